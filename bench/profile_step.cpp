// Where a search step spends its time: runs search steps of an algorithm on random data
// and prints, per op, the kernel calls and seconds forward and backward (from the kernel
// counters), sorted by total time. For finding hot spots, not for reporting speed:
// `cellgraph bench` is the benchmark.
//   profile_step SPEC [--algo darts] [--batch 64] [--steps 2]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "algorithms/algorithm.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: profile_step SPEC [--algo A] [--batch B] [--steps N]\n");
    return 2;
  }
  std::string algo = "darts";
  int64_t batch = 64;
  int steps = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--algo") algo = argv[i + 1];
    if (flag == "--batch") batch = std::atoll(argv[i + 1]);
    if (flag == "--steps") steps = std::atoi(argv[i + 1]);
  }
  try {
    set_num_threads(0);
    const spec::Space space = spec::parse_file(argv[1]);
    const ir::Graph graph = spec::compile(space);
    const ir::ParameterStore params(graph, 0);
    const algorithms::Algorithm& a = algorithms::find_algorithm(algo);
    algorithms::ArchState arch = algorithms::prepared_arch_state(a, graph, space, 0);
    const algorithms::HyperValues hyper = a.default_hyperparameters();
    Sgd sgd(params.weights());
    Adam adam(algorithms::arch_variables(arch));
    Rng rng(0);
    const Shape& in = graph.value(graph.input).shape;
    auto make_batch = [&] {
      Batch b;
      b.images = normal_tensor({batch, in[1], in[2], in[3]}, 0, 1, rng);
      std::vector<float> labels;
      for (int64_t i = 0; i < batch; ++i) labels.push_back(float(rng.below(10)));
      b.labels = Tensor::from_vector({batch}, labels);
      return b;
    };
    const Batch train = make_batch(), val = make_batch();
    {  // warm-up: primitive creation and the allocator cache
      algorithms::StepContext ctx(graph, params, arch, sgd, adam, train, val, hyper);
      algorithms::run_step(a, ctx);
    }
    reset_kernel_counts();
    backend_for(Device::cpu).allocator().reset_peak();
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      algorithms::StepContext ctx(graph, params, arch, sgd, adam, train, val, hyper);
      algorithms::run_step(a, ctx);
    }
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const KernelCounts& k = kernel_counts();
    std::vector<int> order(kOpCount);
    for (int i = 0; i < kOpCount; ++i) order[size_t(i)] = i;
    std::sort(order.begin(), order.end(), [&](int x, int y) {
      return k.forward_seconds[size_t(x)] + k.backward_seconds[size_t(x)] >
             k.forward_seconds[size_t(y)] + k.backward_seconds[size_t(y)];
    });
    std::printf("%d steps of %s, batch %lld, %d threads: %.3f s/step, peak %.1f MiB\n", steps,
                algo.c_str(), static_cast<long long>(batch), num_threads(), total / steps,
                double(backend_for(Device::cpu).allocator().stats().peak_bytes) / (1 << 20));
    std::printf("%-16s %9s %10s %9s %10s\n", "op", "fwd calls", "fwd s/step", "bwd calls",
                "bwd s/step");
    double kernels = 0;
    for (int i : order) {
      const size_t o = size_t(i);
      kernels += k.forward_seconds[o] + k.backward_seconds[o];
      if (k.forward[o] + k.backward[o] == 0) continue;
      std::printf("%-16s %9lld %10.3f %9lld %10.3f\n", op_name(OpKind(i)),
                  static_cast<long long>(k.forward[o] / steps), k.forward_seconds[o] / steps,
                  static_cast<long long>(k.backward[o] / steps), k.backward_seconds[o] / steps);
    }
    std::printf("kernels %.3f s/step, outside kernels %.3f s/step\n", kernels / steps,
                (total - kernels) / steps);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "profile_step: error: %s\n", e.what());
    return 1;
  }
}
