// cellgraph bench SPEC: seconds per search step (and per pass) and peak memory on random
// data of the spec's input shape: images and class labels, or for a language model token
// ids and next-token labels with the hidden state carried from step to step.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>

#include <sys/resource.h>

#include "algorithms/algorithm.h"
#include "algorithms/arch_state.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"

namespace cellgraph::tools {

namespace {

using spec::JsonValue;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The process's peak resident set (VmHWM), in bytes; 0 when /proc is not there.
int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "... kB"
  return 0;
}

// CPU seconds (user + system, all threads) the process has used so far: on a machine shared
// with other jobs it moves far less than the wall clock, so bench reports it per step too.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return double(t.tv_sec) + 1e-6 * double(t.tv_usec); };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

Batch random_batch(const spec::Network& net, int64_t batch, Rng& rng) {
  Batch b;
  b.images = normal_tensor({batch, net.in_channels, net.in_height, net.in_width}, 0, 1, rng);
  std::vector<float> labels;
  for (int64_t i = 0; i < batch; ++i) labels.push_back(float(rng.below(uint64_t(net.classes))));
  b.labels = Tensor::from_vector({batch}, labels);
  return b;
}

// A language model's batch (graph.state_in valid): random token ids [batch, T] in [0, V)
// as the input, and as the labels the next tokens, also [batch, T] (float ids, as Batch
// documents); T and V are the graph's.
Batch random_token_batch(const ir::Graph& graph, int64_t batch, Rng& rng) {
  const int64_t steps = graph.value(graph.input).shape[1];   // [1, T]
  const int64_t vocab = graph.value(graph.logits).shape[2];  // [1, T, V]
  const auto ids = [&] {
    std::vector<float> v(size_t(batch * steps));
    for (float& id : v) id = float(rng.below(uint64_t(vocab)));
    return Tensor::from_vector({batch, steps}, v);
  };
  Batch b;
  b.images = ids();
  b.labels = ids();
  return b;
}

// The candidates a weight step runs: per edge-op group, the (row, column) entries of the
// coefficients it trains through that are not zero. Empty when every entry is non-zero (a
// dense step: DARTS and its kin), so only sparse steps report one.
using Selection = std::vector<std::vector<std::pair<int32_t, int32_t>>>;
Selection weight_step_selection(const ir::Graph& graph, const algorithms::ArchState& arch) {
  const std::vector<Var> coefficients = algorithms::current_coefficients(arch);
  Selection selection(coefficients.size());
  bool sparse = false;
  for (size_t g = 0; g < coefficients.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    if (group.kind != ir::ArchGroup::Kind::edge_ops) continue;
    const std::vector<float> values = coefficients[g].value().to_vector();
    const auto columns = int32_t(group.columns.size());
    for (int32_t i = 0; i < int32_t(values.size()); ++i) {
      if (values[size_t(i)] != 0.0f)
        selection[g].emplace_back(i / columns, i % columns);
      else
        sparse = true;
    }
  }
  return sparse ? selection : Selection{};
}

// {"normal": [[row, "sep_conv_3x3"], ...], ...}: what bench/darts_step_torch.py --selection
// reads, so that the PyTorch reference runs the same candidates.
JsonValue selection_json(const ir::Graph& graph, const Selection& selection) {
  JsonValue j = JsonValue::object();
  for (size_t g = 0; g < selection.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    if (group.kind != ir::ArchGroup::Kind::edge_ops) continue;
    JsonValue entries = JsonValue::array();
    for (const auto& [row, column] : selection[g]) {
      JsonValue entry = JsonValue::array();
      entry.push_back(int64_t(row));
      entry.push_back(group.columns[size_t(column)]);
      entries.push_back(entry);
    }
    j.set(group.name, entries);
  }
  return j;
}

// The hidden state each of a language model's two batch streams (train, val) ended its
// latest forward pass with; undefined (zeros) before the first.
struct CarriedState {
  Tensor train, val;
};

int run_bench(const Args& args) {
  const std::string& path = args.positional(0);
  apply_threads(args);
  apply_recompute(args);
  const Device device = selected_device(args);
  const int64_t batch = args.get_int("batch", 64, 1, 1 << 16);
  const int64_t steps = args.get_int("steps", 10, 1, 100000);
  const int64_t warmup = args.get_int("warmup", 2, 0, 100000);
  const spec::Space space = spec::parse_file(path);
  const algorithms::Algorithm& algo = algorithms::find_algorithm(args.get("algo", "darts"));
  const ir::Graph graph = spec::compile(space);
  const ir::ParameterStore params(graph, 0, device);
  algorithms::ArchState arch = algorithms::prepared_arch_state(algo, graph, space, 1);
  algorithms::move_to_device(arch, device);
  algorithms::HyperValues hyper = algo.default_hyperparameters();
  apply_algorithm_flags(args, "bench", algo.name(), hyper);
  // A language model steps with DARTS' RNN search settings (rnn/train_search.py: SGD lr 20,
  // no momentum, weight decay 5e-7, clip 0.25; Adam lr 3e-3, betas (0.9, 0.999), weight
  // decay 1e-3), an image network with the CNN search's (the optimizers' defaults, clip 5).
  const bool language_model = graph.state_in.valid();
  Sgd sgd(params.weights(), language_model
                                ? SgdOptions{.lr = 20.0f, .momentum = 0.0f, .weight_decay = 5e-7f}
                                : SgdOptions{});
  Adam adam(algorithms::arch_variables(arch),
            language_model ? AdamOptions{.lr = 3e-3f, .beta1 = 0.9f, .weight_decay = 1e-3f}
                           : AdamOptions{});
  // A fixed network has no architecture to update: bench its training step.
  const bool fixed = graph.arch_groups.empty();
  const std::vector<algorithms::NamedPass> passes =
      fixed ? std::vector<algorithms::NamedPass>{{"update_weights", algorithms::update_weights}}
            : algo.passes();
  Rng rng(1);
  const auto make_batch = [&] {
    return to_device(language_model ? random_token_batch(graph, batch, rng)
                                    : random_batch(space.network, batch, rng),
                     device);
  };
  const Batch train = make_batch();
  const Batch val = make_batch();
  CarriedState state;

  CachingAllocator& allocator = backend_for(device).allocator();
  std::vector<double> step_times, step_cpu_times;
  std::vector<std::vector<double>> pass_times(passes.size());
  // A sparse step's candidates: before the first step, then after each (what its weight
  // pass ran), warm-up steps included.
  std::vector<Selection> selections;
  if (!fixed) selections.push_back(weight_step_selection(graph, arch));
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) allocator.reset_peak();
    algorithms::StepContext ctx(graph, params, arch, sgd, adam, train, val, hyper);
    ctx.step = uint64_t(i);
    // A language model starts each stream from the state its previous step ended with, as
    // a search session carries it across batches (forward_loss runs from it and leaves
    // the new one in *_state_out, without history).
    if (language_model) {
      ctx.grad_clip = 0.25f;
      ctx.train_state = state.train;
      ctx.val_state = state.val;
    }
    const Clock::time_point start = Clock::now();
    const double cpu_start = process_cpu_seconds();
    for (size_t p = 0; p < passes.size(); ++p) {
      const Clock::time_point t0 = Clock::now();
      passes[p].run(ctx);
      if (i >= warmup)
        pass_times[p].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (language_model) {
      if (ctx.train_state_out.defined()) state.train = ctx.train_state_out;
      if (ctx.val_state_out.defined()) state.val = ctx.val_state_out;
    }
    if (i >= warmup) {
      step_times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      step_cpu_times.push_back(process_cpu_seconds() - cpu_start);
    }
    // Read after the step's clocks stop.
    if (!fixed) selections.push_back(weight_step_selection(graph, arch));
  }
  const MemoryStats memory = allocator.stats();

  JsonValue j = JsonValue::object();
  j.set("spec", path);
  j.set("algo", fixed ? "train (fixed network)" : algo.name());
  j.set("batch", batch);
  if (language_model) {
    j.set("tokens_per_sample", graph.value(graph.input).shape[1]);
    j.set("vocabulary", graph.value(graph.logits).shape[2]);
    j.set("state", "carried per stream (train, val) from step to step, zeros at the first");
  }
  j.set("threads", num_threads());
  j.set("device", std::string(device_name(device)));
  j.set("steps", steps);
  j.set("warmup", warmup);
  j.set("seconds_per_step", median(step_times));
  j.set("cpu_seconds_per_step", median(step_cpu_times));
  JsonValue pass_list = JsonValue::array();
  for (size_t p = 0; p < passes.size(); ++p) {
    JsonValue pass = JsonValue::object();
    pass.set("name", passes[p].name);
    pass.set("seconds", median(pass_times[p]));
    pass_list.push_back(pass);
  }
  j.set("passes", pass_list);
  j.set("peak_bytes", uint64_t(memory.peak_bytes));
  j.set("peak_rss_bytes", peak_rss_bytes());
  j.set("weights", graph.weight_count());
  j.set("macs_per_sample", graph.macs());
  if (!selections.empty() && !selections.back().empty()) {
    JsonValue list = JsonValue::array();
    int64_t changes = 0;
    for (size_t i = 0; i < selections.size(); ++i) {
      list.push_back(selection_json(graph, selections[i]));
      if (i > size_t(warmup) + 1 && selections[i] != selections[i - 1]) ++changes;
    }
    // Entry 0 is the state before the first step, entry i + 1 what step i's weight pass ran.
    j.set("weight_step_selections", list);
    j.set("timed_selection_changes", changes);
  }
  if (args.has("json")) {
    std::cout << spec::dump(j, 2) << "\n";
    return 0;
  }
  std::cout << path << ": " << (fixed ? "training" : algo.name()) << " step, batch " << batch
            << ", " << num_threads() << " threads, median of " << steps << " steps\n";
  std::printf("  step                             %9.4f s\n", median(step_times));
  std::printf("  step, process CPU time           %9.4f s\n", median(step_cpu_times));
  for (size_t p = 0; p < passes.size(); ++p)
    std::printf("  %-32s %9.4f s\n", passes[p].name, median(pass_times[p]));
  std::printf("  peak tensor memory %.1f MiB, peak RSS %.1f MiB, %lld weights\n",
              double(memory.peak_bytes) / (1 << 20), double(peak_rss_bytes()) / (1 << 20),
              (long long)graph.weight_count());
  return 0;
}

std::vector<Flag> bench_flags() {
  std::vector<Flag> flags = {{"algo", "NAME", algorithms::algorithm_names(), "darts"},
                             {"batch", "B", "batch size of the train and val batches", "64"},
                             {"steps", "N", "timed steps (the median is reported)", "10"},
                             {"warmup", "N", "untimed steps first", "2"},
                             threads_flag(),
                             recompute_flag(),
                             device_flag(),
                             {"json", "", "print one JSON object", ""}};
  for (const Flag& f : algorithm_flags()) flags.push_back(f);
  return flags;
}

}  // namespace

const Command& bench_command() {
  static const Command kCommand{
      .name = "bench",
      .summary = "time search steps (and each pass) and measure peak memory on random data",
      .positionals = {"SPEC"},
      .flags = bench_flags(),
      .details =
          "Peak tensor memory is the CPU allocator's peak over the timed steps; peak RSS\n"
          "is the process's VmHWM. A fixed network benchmarks its training step. The\n"
          "algorithm's own flags are those of `cellgraph search`.",
      .run = run_bench};
  return kCommand;
}

}  // namespace cellgraph::tools
