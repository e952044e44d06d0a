// cellgraph latency SPEC: a search space's latency table (every candidate op of every mixed
// edge, timed at its real input shape; algorithms/latency.h), or a fixed network's measured
// end-to-end forward latency next to a table's additive estimate of it (docs/cli.md).
#include "algorithms/latency.h"

#include <cstdio>
#include <iostream>

#include "algorithms/data_shape.h"
#include "engine/data/dataset.h"
#include "engine/error.h"
#include "engine/threads.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"

namespace cellgraph::tools {

namespace {

using algorithms::LatencyTable;

void print_table(const LatencyTable& t) {
  std::cout << t.space << ": batch " << t.batch << ", " << t.threads << " threads, " << t.device
            << ", median of " << t.repeats << " runs (ms, summed over a cell type's instances)\n";
  for (const auto& [cell, edges] : t.ms) {
    std::cout << "cell " << cell << " (" << t.instances.at(cell) << " instances)\n";
    for (const auto& [edge, ops] : edges) {
      std::cout << "  " << edge << ":";
      for (const auto& [op, ms] : ops) std::printf(" %s %.4f", op.c_str(), ms);
      std::cout << "\n";
    }
  }
  std::printf("rest of the network (no candidate op): %.4f ms\n", t.rest_ms);
}

int run_latency(const Args& args) {
  const std::string& path = args.positional(0);
  apply_threads(args);
  const algorithms::LatencyOptions options{.batch = args.get_int("batch", 1, 1, 1 << 16),
                                           .warmup = int(args.get_int("warmup", 3, 0, 100000)),
                                           .repeats = int(args.get_int("repeats", 15, 1, 100000))};
  spec::Space space = spec::parse_file(path);
  if (args.has("data")) {  // only the shape matters: the (smaller) test split tells it
    const Dataset data = load_dataset(args.get("data"), Split::test);
    note(algorithms::fit_space_to_data(space, algorithms::data_shape(data)));
  }
  const ir::Graph graph = spec::compile(space);

  if (!space.is_fixed()) {
    if (args.has("table"))
      throw error("--table compares a fixed network with a table; ", path,
                  " is a search space (measure its table with --out)");
    const LatencyTable table = algorithms::measure_latency(graph, space, options);
    if (args.has("out")) {
      write_file_atomic(args.get("out"), spec::dump(algorithms::latency_json(table), 2) + "\n");
      std::cerr << "wrote " << args.get("out") << "\n";
    }
    if (args.has("json"))
      std::cout << spec::dump(algorithms::latency_json(table), 2) << "\n";
    else
      print_table(table);
    return 0;
  }

  if (args.has("out"))
    throw error("--out writes a search space's table; ", path,
                " is a fixed network (give --table TABLE.json to compare with an estimate)");
  const ir::ParameterStore params(graph, 0);
  const double measured = algorithms::measure_forward_ms(graph, params, options);
  spec::JsonValue j = spec::JsonValue::object();
  j.set("spec", path);
  j.set("batch", options.batch);
  j.set("threads", num_threads());
  j.set("measured_ms", measured);
  double estimate = 0;
  if (args.has("table")) {
    const LatencyTable table = algorithms::read_latency_table(args.get("table"));
    if (table.batch != options.batch || table.threads != num_threads())
      note("the table was measured at batch " + std::to_string(table.batch) + " with " +
           std::to_string(table.threads) + " threads; this run uses batch " +
           std::to_string(options.batch) + " and " + std::to_string(num_threads()));
    estimate = algorithms::estimated_latency_ms(table, space);
    j.set("table", args.get("table"));
    j.set("estimated_ms", estimate);
    j.set("estimate_over_measured", estimate / measured);
  }
  if (args.has("json")) {
    std::cout << spec::dump(j, 2) << "\n";
    return 0;
  }
  std::printf("%s: forward %.4f ms (batch %lld, %d threads, median of %d runs)\n", path.c_str(),
              measured, (long long)options.batch, num_threads(), options.repeats);
  if (args.has("table"))
    std::printf("table estimate %.4f ms (%.2f x measured)\n", estimate, estimate / measured);
  return 0;
}

}  // namespace

const Command& latency_command() {
  static const Command kCommand{
      .name = "latency",
      .summary = "measure a search space's latency table, or a fixed network's forward latency",
      .positionals = {"SPEC"},
      .flags = {{"out", "FILE", "write the search space's table here (JSON)", ""},
                {"table", "FILE", "a fixed network: also print this table's estimate of it", ""},
                {"batch", "B", "batch size of the timed forward passes", "1"},
                {"data", "DATA", "fit the spec's input and classes to DATA first (as search does)",
                 ""},
                {"warmup", "N", "untimed runs before timing", "3"},
                {"repeats", "N", "timed runs (the median is kept)", "15"},
                threads_flag(),
                {"json", "", "print JSON instead of text", ""}},
      .details =
          "A search space: times every candidate op of every mixed edge at its input shape\n"
          "(forward, eval mode; none = 0) and the rest of the network without them; the\n"
          "table (--out) feeds `search --algo rarts --latency FILE --latency-weight MU`.\n"
          "A fixed network (a derived.json): its measured forward latency, and with --table\n"
          "the table's additive estimate (rest + the entries of its ops).",
      .run = run_latency};
  return kCommand;
}

}  // namespace cellgraph::tools
