// SparseNAS' step at a chosen sparsity, without a checkpoint, beside DARTS' steps on the same
// yardstick: what a search pays once lambda has zeroed most of A. `cellgraph bench --algo
// sparsenas` times the first steps, where every entry of A is non-zero; here a seeded
// fraction of the entries is non-zero and the state is put back to that pattern before the
// architecture passes and again before the weight step (the proximal step would otherwise
// revive or prune entries as it goes), so every timed step runs the same active sets.
// `--active-per-edge K` instead puts exactly K non-zero entries in every row of A (K active
// candidate ops on every edge), which is how bench/run_scaling measures step time against K.
// The patterns are in bench/sparse_pattern.h.
//   sparsenas_bench SPEC [--algo sparsenas|darts|darts2] [--density 0.25 | --active-per-edge K]
//                        [--batch 64] [--steps 5] [--warmup 1] [--revive-every 1]
//                        [--order second]
// Prints one JSON line: per step (median) wall-clock seconds and CPU seconds of the process
// (on a shared machine the CPU time is the steadier measure of the work), the same per
// pass, the allocator's peak, peak RSS, and the candidates each pass runs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "algorithms/algorithm.h"
#include "algorithms/sparsenas.h"
#include "bench/sparse_pattern.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"

using namespace cellgraph;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

Batch random_batch(const spec::Network& net, int64_t batch, Rng& rng) {
  Batch b;
  b.images = normal_tensor({batch, net.in_channels, net.in_height, net.in_width}, 0, 1, rng);
  std::vector<float> labels;
  for (int64_t i = 0; i < batch; ++i) labels.push_back(float(rng.below(uint64_t(net.classes))));
  b.labels = Tensor::from_vector({batch}, labels);
  return b;
}

}  // namespace

// Candidates a plan runs with autodiff and forward-only.
algorithms::CandidateCounts counts_for(const ir::Graph& graph, const sched::ActiveSet& active) {
  return algorithms::candidates_run(graph, sched::make_plan(graph, active));
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: sparsenas_bench SPEC [--algo A] [--density D | --active-per-edge K] "
                 "[--batch B] [--steps N] [--warmup W] [--revive-every N] "
                 "[--order second|first]\n");
    return 2;
  }
  std::string algo_name = "sparsenas", order = "second";
  bench::SparsePattern pattern;
  int64_t batch = 64, steps = 5, warmup = 1, revive_every = 1;
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 == argc) {
      std::fprintf(stderr, "sparsenas_bench: %s needs a value\n", flag.c_str());
      return 2;
    }
    const std::string value = argv[i + 1];
    if (flag == "--algo")
      algo_name = value;
    else if (flag == "--density")
      pattern.density = std::atof(value.c_str());
    else if (flag == "--active-per-edge")
      pattern.active_per_edge = std::atoll(value.c_str());
    else if (flag == "--batch")
      batch = std::atoll(value.c_str());
    else if (flag == "--steps")
      steps = std::atoll(value.c_str());
    else if (flag == "--warmup")
      warmup = std::atoll(value.c_str());
    else if (flag == "--revive-every")
      revive_every = std::atoll(value.c_str());
    else if (flag == "--order")
      order = value;
    else {
      // A misspelt flag would otherwise time the default pattern under the wrong label.
      std::fprintf(stderr, "sparsenas_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    set_num_threads(0);
    const spec::Space space = spec::parse_file(argv[1]);
    const ir::Graph graph = spec::compile(space);
    const ir::ParameterStore params(graph, 0);
    const algorithms::Algorithm& algo = algorithms::find_algorithm(algo_name);
    const bool sparse = algo_name == "sparsenas";
    algorithms::HyperValues hyper = algo.default_hyperparameters();
    if (sparse) {
      hyper.set_number("sparsenas-revive-every", double(revive_every));
      hyper.set_choice("sparsenas-order", order);
    }
    algorithms::ArchState arch = algo.initial_state(graph, space, hyper, 1);
    Sgd sgd(params.weights(), SgdOptions{});
    Adam adam(algorithms::arch_variables(arch), AdamOptions{});
    Rng rng(1);
    const Batch train = random_batch(space.network, batch, rng);
    const Batch val = random_batch(space.network, batch, rng);
    const std::vector<algorithms::NamedPass> passes = algo.passes();

    // The pattern, and what each pass runs at it.
    algorithms::CandidateCounts arch_counts, weight_counts;
    if (sparse) {
      bench::apply_sparse_pattern(arch, pattern);
      const bool revive = revive_every == 1;
      arch_counts =
          counts_for(graph, algorithms::nonzero_active_set(
                                graph, arch, revive ? sched::kForwardOnly : sched::kInactive));
      weight_counts =
          counts_for(graph, algorithms::nonzero_active_set(graph, arch, sched::kInactive));
    } else {
      arch_counts = weight_counts = counts_for(graph, arch.active);
    }

    CachingAllocator& allocator = backend_for(Device::cpu).allocator();
    std::vector<double> step_wall, step_cpu;
    std::vector<std::vector<double>> pass_wall(passes.size()), pass_cpu(passes.size());
    for (int64_t i = 0; i < warmup + steps; ++i) {
      if (i == warmup) allocator.reset_peak();
      algorithms::StepContext ctx(graph, params, arch, sgd, adam, train, val, hyper);
      ctx.step = uint64_t(i);
      double wall = 0, cpu = 0;
      for (size_t p = 0; p < passes.size(); ++p) {
        if (sparse && (p == 0 || std::string(passes[p].name) == "update_weights")) {
          bench::apply_sparse_pattern(arch, pattern);
          // A revival step (iterations 0) unless --revive-every skips this one.
          algorithms::sparsenas_state(arch).iterations = revive_every > 1 ? 1 : 0;
          arch.active = algorithms::nonzero_active_set(graph, arch, sched::kInactive);
        }
        const Clock::time_point t0 = Clock::now();
        const double c0 = cpu_seconds();
        passes[p].run(ctx);
        const double dw = std::chrono::duration<double>(Clock::now() - t0).count();
        const double dc = cpu_seconds() - c0;
        wall += dw;
        cpu += dc;
        if (i >= warmup) {
          pass_wall[p].push_back(dw);
          pass_cpu[p].push_back(dc);
        }
      }
      if (i >= warmup) {
        step_wall.push_back(wall);
        step_cpu.push_back(cpu);
      }
    }
    spec::JsonValue j = spec::JsonValue::object();
    j.set("spec", std::string(argv[1]));
    j.set("algo", algo_name);
    if (sparse) {
      if (pattern.active_per_edge > 0)
        j.set("active_per_edge", pattern.active_per_edge);
      else
        j.set("density", pattern.density);
      j.set("order", order);
      j.set("revive_every", revive_every);
    }
    j.set("batch", batch);
    j.set("threads", num_threads());
    j.set("steps", steps);
    j.set("seconds_per_step", median(step_wall));
    j.set("cpu_seconds_per_step", median(step_cpu));
    spec::JsonValue pass_list = spec::JsonValue::object();
    for (size_t p = 0; p < passes.size(); ++p) {
      spec::JsonValue one = spec::JsonValue::object();
      one.set("seconds", median(pass_wall[p]));
      one.set("cpu_seconds", median(pass_cpu[p]));
      pass_list.set(passes[p].name, one);
    }
    j.set("passes", pass_list);
    j.set("peak_bytes", uint64_t(allocator.stats().peak_bytes));
    j.set("peak_rss_bytes", peak_rss_bytes());
    j.set("weights", graph.weight_count());  // run_darts_bench checks it against PyTorch's
    j.set("candidates", int64_t(graph.candidates.size()));
    j.set("arch_pass_recorded", arch_counts.recorded);
    j.set("arch_pass_forward_only", arch_counts.forward_only);
    j.set("weight_step_candidates", weight_counts.recorded);
    std::printf("%s\n", spec::dump(j).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
