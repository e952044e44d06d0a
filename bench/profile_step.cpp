// Where a search step spends its time: runs search steps of an algorithm on random data
// and prints, per op, the kernel calls and seconds forward and backward (from the kernel
// counters), sorted by total time. For finding hot spots, not for reporting speed:
// `cellgraph bench` is the benchmark.
//   profile_step SPEC [--algo darts] [--batch 64] [--steps 2] [--split] [--shapes [N]]
//
// It starts as `cellgraph bench` does (weights seed 0, architecture seed 1, batches from
// generator seed 1) and warms up one step, so a sparse algorithm's steps run the
// candidates of `cellgraph bench --warmup 1`'s, which the PyTorch reference can follow
// (bench/darts_step_torch.py --selection): per-op times of the two then compare like for
// like. (Before 2026-12-07 both seeds were 0: sparse steps ran other candidates.)
//
// --split (issue 17, items 3 and 4) turns on the kernel counters' split (backend.h) and
// adds, per step, where the time went, in wall and process CPU seconds:
//   candidate kernels       forward / backward kernels of nodes that belong to a candidate
//                           op (ir::Node::candidate valid; autodiff carries the mark to
//                           their backward)
//   shared by candidates    nodes that belong to no candidate because several read them
//                           (the ReLU of an edge input that every conv candidate starts
//                           with, spec/builder.h): candidate work, run once
//   other kernels           forward / backward kernels of every other node: stem, the
//                           cells' preprocessing, node sums, concat, head, loss
//   recomputed in backward  forwards run again to rebuild a value no node kept (relu by
//                           default; engine/autodiff/var.h, Recompute)
//   grad accumulation       backward's sums where a value's gradient arrives from several
//                           readers
//   vector ops              the optimizers' steps, norms, DARTS' finite differences (vec::)
//   rest                    the step's time less all of the above: planning, the
//                           coefficients, dispatch, autodiff bookkeeping, allocation, fills
// and the shares the issue asks about: the step's time outside candidate kernels (item 3;
// also without the shared nodes, which the candidates would otherwise run each) and the
// rest as a share of the step (item 4). CPU time counts every OpenMP
// thread; run with OMP_WAIT_POLICY=passive so that threads waiting for work do not spin
// and count. Reading the process CPU clock is a system call per kernel (about 1 µs, a few
// thousand per step), which the split's own figures include.
//
// --shapes [N] (default 30) adds the N kernel keys that took the most time (backend.h,
// kernel_shape_times: op, pass, input shapes, conv and pool attributes) with their calls
// and seconds per step and milliseconds a call: which of an op's calls are slow, in the
// step's own cache state rather than a micro-benchmark's.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/algorithm.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;

namespace {
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

void print_row(const char* what, double wall, double cpu, double total_wall, double total_cpu,
               int steps) {
  std::printf("  %-26s %8.3f %6.1f%% %8.3f %6.1f%%\n", what, wall / steps, 100 * wall / total_wall,
              cpu / steps, 100 * cpu / total_cpu);
}

void print_shapes(int top, int steps) {
  std::vector<std::pair<std::string, ShapeKernelTime>> rows(kernel_shape_times().begin(),
                                                            kernel_shape_times().end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& x, const auto& y) { return x.second.seconds > y.second.seconds; });
  double all = 0;
  for (const auto& row : rows) all += row.second.seconds;
  std::printf("kernels by shape (%zu keys, the %d slowest; s/step, share of kernel time):\n",
              rows.size(), std::min<int>(top, int(rows.size())));
  std::printf("  %8s %7s %9s %8s  %s\n", "s/step", "share", "calls/st", "ms/call", "key");
  for (size_t i = 0; i < rows.size() && int(i) < top; ++i) {
    const ShapeKernelTime& t = rows[i].second;
    std::printf("  %8.4f %6.1f%% %9.1f %8.3f  %s\n", t.seconds / steps,
                all > 0 ? 100 * t.seconds / all : 0.0, double(t.calls) / steps,
                1e3 * t.seconds / double(t.calls), rows[i].first.c_str());
  }
}

void print_split(const KernelCounts& k, double wall, double cpu, int steps) {
  const auto part = [](KernelPart p) { return static_cast<size_t>(p); };
  const KernelPartTime& fc = k.forward_parts[part(KernelPart::candidate)];
  const KernelPartTime& bc = k.backward_parts[part(KernelPart::candidate)];
  const KernelPartTime& fs = k.forward_parts[part(KernelPart::shared)];
  const KernelPartTime& bs = k.backward_parts[part(KernelPart::shared)];
  const KernelPartTime& fn = k.forward_parts[part(KernelPart::network)];
  const KernelPartTime& bn = k.backward_parts[part(KernelPart::network)];
  double counted_wall =
      k.accumulate.wall_seconds + k.vector_ops.wall_seconds + k.recompute.wall_seconds;
  double counted_cpu =
      k.accumulate.cpu_seconds + k.vector_ops.cpu_seconds + k.recompute.cpu_seconds;
  for (const KernelPartTime* t : {&fc, &bc, &fs, &bs, &fn, &bn}) {
    counted_wall += t->wall_seconds;
    counted_cpu += t->cpu_seconds;
  }
  std::printf(
      "split per step (kernels fwd + bwd: %lld + %lld candidate, %lld + %lld shared, "
      "%lld + %lld network):\n",
      static_cast<long long>(fc.calls / steps), static_cast<long long>(bc.calls / steps),
      static_cast<long long>(fs.calls / steps), static_cast<long long>(bs.calls / steps),
      static_cast<long long>(fn.calls / steps), static_cast<long long>(bn.calls / steps));
  std::printf("  %-26s %8s %7s %8s %7s\n", "", "wall s", "share", "cpu s", "share");
  print_row("candidate kernels fwd", fc.wall_seconds, fc.cpu_seconds, wall, cpu, steps);
  print_row("candidate kernels bwd", bc.wall_seconds, bc.cpu_seconds, wall, cpu, steps);
  print_row("shared by candidates fwd", fs.wall_seconds, fs.cpu_seconds, wall, cpu, steps);
  print_row("shared by candidates bwd", bs.wall_seconds, bs.cpu_seconds, wall, cpu, steps);
  print_row("other kernels fwd", fn.wall_seconds, fn.cpu_seconds, wall, cpu, steps);
  print_row("other kernels bwd", bn.wall_seconds, bn.cpu_seconds, wall, cpu, steps);
  print_row("recomputed in backward", k.recompute.wall_seconds, k.recompute.cpu_seconds, wall, cpu,
            steps);
  print_row("grad accumulation", k.accumulate.wall_seconds, k.accumulate.cpu_seconds, wall, cpu,
            steps);
  print_row("vector ops (optimizers)", k.vector_ops.wall_seconds, k.vector_ops.cpu_seconds, wall,
            cpu, steps);
  print_row("rest (plan, dispatch, ...)", wall - counted_wall, cpu - counted_cpu, wall, cpu, steps);
  print_row("step", wall, cpu, wall, cpu, steps);
  const double cand_wall = fc.wall_seconds + bc.wall_seconds;
  const double cand_cpu = fc.cpu_seconds + bc.cpu_seconds;
  const double shared_wall = fs.wall_seconds + bs.wall_seconds;
  const double shared_cpu = fs.cpu_seconds + bs.cpu_seconds;
  std::printf(
      "outside candidate ops: %.1f%% of the step (cpu %.1f%%), %.1f%% of the forward "
      "kernels (cpu %.1f%%)\n",
      100 * (wall - cand_wall) / wall, 100 * (cpu - cand_cpu) / cpu,
      100 * (fn.wall_seconds + fs.wall_seconds) /
          (fn.wall_seconds + fs.wall_seconds + fc.wall_seconds),
      100 * (fn.cpu_seconds + fs.cpu_seconds) / (fn.cpu_seconds + fs.cpu_seconds + fc.cpu_seconds));
  std::printf("outside candidate ops and the nodes they share: %.1f%% of the step (cpu %.1f%%)\n",
              100 * (wall - cand_wall - shared_wall) / wall,
              100 * (cpu - cand_cpu - shared_cpu) / cpu);
  std::printf("outside kernels (rest): %.1f%% of the step (cpu %.1f%%)\n",
              100 * (wall - counted_wall) / wall, 100 * (cpu - counted_cpu) / cpu);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: profile_step SPEC [--algo A] [--batch B] [--steps N] [--split] "
                 "[--shapes [N]]\n");
    return 2;
  }
  std::string algo = "darts";
  int64_t batch = 64;
  int steps = 2;
  bool split = false;
  int shapes = 0;  // 0: no by-shape table
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--split") {
      split = true;
      continue;
    }
    if (flag == "--shapes") {
      shapes = 30;
      if (i + 1 < argc && std::atoi(argv[i + 1]) > 0) shapes = std::atoi(argv[++i]);
      continue;
    }
    if (i + 1 >= argc) break;
    if (flag == "--algo") algo = argv[i + 1];
    if (flag == "--batch") batch = std::atoll(argv[i + 1]);
    if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    ++i;
  }
  try {
    set_num_threads(0);
    const spec::Space space = spec::parse_file(argv[1]);
    const ir::Graph graph = spec::compile(space);
    const ir::ParameterStore params(graph, 0);
    const algorithms::Algorithm& a = algorithms::find_algorithm(algo);
    algorithms::ArchState arch = algorithms::prepared_arch_state(a, graph, space, 1);
    const algorithms::HyperValues hyper = a.default_hyperparameters();
    Sgd sgd(params.weights());
    Adam adam(algorithms::arch_variables(arch));
    Rng rng(1);
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
      ctx.step = 0;
      algorithms::run_step(a, ctx);
    }
    reset_kernel_counts();
    set_kernel_split(split);
    set_kernel_shapes(shapes > 0);
    backend_for(Device::cpu).allocator().reset_peak();
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      algorithms::StepContext ctx(graph, params, arch, sgd, adam, train, val, hyper);
      ctx.step = uint64_t(s) + 1;  // as `cellgraph bench` numbers its steps
      algorithms::run_step(a, ctx);
    }
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double total_cpu = process_cpu_seconds() - cpu_start;
    set_kernel_split(false);
    set_kernel_shapes(false);
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
    std::printf("%-16s %9s %10s %9s %10s", "op", "fwd calls", "fwd s/step", "bwd calls",
                "bwd s/step");
    if (split) std::printf(" %13s %13s", "fwd s non-cand", "bwd s non-cand");
    std::printf("\n");
    double kernels = 0;
    for (int i : order) {
      const size_t o = size_t(i);
      kernels += k.forward_seconds[o] + k.backward_seconds[o];
      if (k.forward[o] + k.backward[o] == 0) continue;
      std::printf("%-16s %9lld %10.3f %9lld %10.3f", op_name(OpKind(i)),
                  static_cast<long long>(k.forward[o] / steps), k.forward_seconds[o] / steps,
                  static_cast<long long>(k.backward[o] / steps), k.backward_seconds[o] / steps);
      if (split)
        std::printf(" %13.3f %13.3f",
                    (k.forward_seconds[o] - k.candidate_forward_seconds[o]) / steps,
                    (k.backward_seconds[o] - k.candidate_backward_seconds[o]) / steps);
      std::printf("\n");
    }
    std::printf("kernels %.3f s/step, outside kernels %.3f s/step\n", kernels / steps,
                (total - kernels) / steps);
    if (split) print_split(k, total, total_cpu, steps);
    if (shapes > 0) print_shapes(shapes, steps);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "profile_step: error: %s\n", e.what());
    return 1;
  }
}
