// cellgraph: the command-line runner. Dispatches to one subcommand; every user error is a
// cellgraph::Error thrown anywhere below and caught here, once: "cellgraph: error: MESSAGE"
// on stderr and exit status 1.
#include <algorithm>
#include <exception>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/machine.h"
#include "engine/threads.h"
#include "tools/cellgraph/commands.h"

#ifndef CELLGRAPH_VERSION
#define CELLGRAPH_VERSION "unknown"
#endif

namespace cellgraph::tools {

Flag threads_flag() {
  return {"threads", "T", "CPU threads (0: every core, or $CELLGRAPH_THREADS)", "0"};
}

void apply_threads(const Args& args) {
  const int64_t asked = args.get_int("threads", 0, 0, 1 << 20);
  if (asked > thread_cap())
    std::cerr << "cellgraph: note: --threads " << asked << " is more than 4 per core ("
              << core_count() << " cores): using " << thread_cap() << "\n";
  set_num_threads(int(std::min<int64_t>(asked, thread_cap())));
}

Flag recompute_flag() {
  return {"recompute", "LEVEL",
          "what a backward redoes instead of keeping: relu (its outputs; no measurable cost), "
          "depthwise (also depthwise convs' outputs: a DARTS search step keeps ~38% less at its "
          "peak and takes ~15% longer) or none",
          "relu"};
}

void apply_recompute(const Args& args) {
  const std::string level = args.get("recompute", "relu");
  if (level == "none")
    set_recompute(Recompute::none);
  else if (level == "relu")
    set_recompute(Recompute::elementwise);
  else if (level == "depthwise")
    set_recompute(Recompute::convolutions);
  else
    throw error("--recompute: expected relu, depthwise or none, got '", level, "'");
}

Flag device_flag() {
  return {"device", "D", "where to compute: cpu or cuda (a CUDA build with a GPU)", "cpu"};
}

Device selected_device(const Args& args) {
  const std::string name = args.get("device", "cpu");
  const std::optional<Device> device = device_named(name);
  if (!device) throw error("--device: expected cpu or cuda, got '", name, "'");
  backend_for(*device);  // throws when it cannot be used
  return *device;
}

namespace {

std::vector<const Command*> all_commands() {
  return {&validate_command(), &info_command(),   &search_command(), &derive_command(),
          &train_command(),    &eval_command(),   &export_command(), &infer_command(),
          &draw_command(),     &report_command(), &bench_command(),  &latency_command()};
}

int dispatch(const std::vector<std::string>& argv) {
  const std::vector<const Command*> commands = all_commands();
  if (argv.empty())
    throw error("no command given; usage: cellgraph COMMAND [ARGS] (cellgraph --help lists them)");
  const std::string& name = argv[0];
  if (name == "--help" || name == "-h" || name == "help") {
    std::cout << program_help(commands);
    return 0;
  }
  if (name == "--version") {
    std::cout << "cellgraph " << CELLGRAPH_VERSION << "\n";
    return 0;
  }
  std::vector<std::string> names;
  for (const Command* c : commands) {
    names.push_back(c->name);
    if (c->name != name) continue;
    const Args args(*c, std::vector<std::string>(argv.begin() + 1, argv.end()));
    if (args.help_requested()) {
      std::cout << command_help(*c);
      return 0;
    }
    return c->run(args);
  }
  std::string hint = did_you_mean(name, names);
  if (hint.empty()) {
    hint = "; expected one of:";
    for (const std::string& n : names) hint.append(" ").append(n);
  }
  if (name.rfind('-', 0) == 0)
    throw error("unknown option '", name, "' before the command; usage: cellgraph COMMAND ...");
  throw error("unknown command '", name, "'", hint);
}

}  // namespace
}  // namespace cellgraph::tools

int main(int argc, char** argv) {
  try {
    return cellgraph::tools::dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const cellgraph::Error& e) {
    std::cout.flush();
    std::cerr << "cellgraph: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "cellgraph: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    // Not a user error: a bug or a failing system call that no check turned into an Error.
    std::cerr << "cellgraph: internal error: " << e.what() << "\n";
    return 2;
  }
}
