// Per-primitive timing of the CPU conv2d kernels (forward, backward data, backward weights,
// and both gradients in one call) for the shapes a DARTS search runs most, at batch 64.
// Calls the backend's kernel table directly, so no autodiff or dispatch cost is in the
// numbers. Not built by CMake: it compares conv.cpp variants, e.g.
//   g++ -O3 -std=c++20 -fopenmp -I. -c engine/backends/cpu/conv.cpp -o /tmp/conv.o
//   g++ -O2 -std=c++20 -fopenmp -I. bench/conv_layout_probe.cpp /tmp/conv.o [...]
//       build/engine/libcellgraph_core.a -ldnnl -lz -o /tmp/probe
//   OMP_WAIT_POLICY=passive /tmp/probe --repeats 51 [--case NAME] [--cpu]
// Prints one row per case: the median ms of each primitive over the repeats. --cpu times
// process CPU time instead of wall time: with CELLGRAPH_THREADS=1 (set_num_threads
// overrides OMP_NUM_THREADS) on a machine shared with compilers, that leaves out the time
// the thread spent preempted, which wall medians can not.
//
// 2-core AVX-512 EPYC, load average 4-7, CELLGRAPH_THREADS=1 --cpu, median of 3 runs of 51
// repeats; fwd / bwd data / bwd weights / fwd + both gradients in one backward call, ms:
//   case                plain layouts only (gemm)     layout rule of conv.cpp
//   conv3x3_c16_s32      4.52  6.71  9.58  20.58       2.09  1.87  1.83  5.78
//   conv1x1_c64_s8       0.17  0.16  0.24   0.57       0.17  0.17  0.24  0.57  (plain kept)
//   dw3x3_c16_s32        3.43  6.05  6.49  16.00       0.62  0.75  0.42  2.09
//   dw5x5_c32_s16        5.37  7.92 10.80  24.83       0.24  0.34  1.07  1.72  (dw: loops)
//   dil2_dw3x3_c16_s32   3.38  6.22  6.41  17.23       0.60  0.62  0.68  2.00  (bwd: loops)
//   dw5x5_s2_c32_s16     2.25  2.83  2.85   7.92       0.12  0.28  1.19  1.68  (dw: loops)
//   conv1x1_c16_s32      0.19  0.23  0.71   1.21       0.20  0.23  0.69  1.18  (plain kept)
//
// 2026-12-06, same machine, load ~1-2, CELLGRAPH_THREADS=1 --cpu, 31 repeats, two runs each:
// the rule before stride-1 depthwise convs moved to our loops (jit_dw and its reorders)
// against after (conv.cpp rule 0; the pitched planes of conv_loops.cpp), fwd / bwd data /
// bwd weights / fwd + both, ms:
//   dw3x3_c16_s32        0.73-0.75  0.83-0.86  0.64-0.67  2.51-3.32   ->  0.44-0.45  0.43-0.44
//                        0.61-0.71  1.54-1.69
//   dw5x5_c32_s16        0.41       0.53-0.55  0.97-0.98  1.98-2.01   ->  0.63-0.65  0.63-0.64
//                        0.96-1.06  2.22-2.36
//   dil2_dw3x3_c16_s32   0.70-0.72  0.60       0.60-0.61  1.92-1.95   ->  0.41       0.41
//                        0.60-0.66  1.50-1.55
// Alone, 5x5 loses on the forward; inside a DARTS step it measured no slower (conv.cpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "engine/backends/backend.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"

using namespace cellgraph;

namespace {
struct Case {
  const char* name;
  int64_t batch, channels, out_channels, size;
  int kernel, stride, dilation;
  bool depthwise;
};

const Case kCases[] = {
    {"conv3x3_c16_s32", 64, 16, 16, 32, 3, 1, 1, false},
    {"conv1x1_c64_s8", 64, 64, 64, 8, 1, 1, 1, false},
    {"dw3x3_c16_s32", 64, 16, 16, 32, 3, 1, 1, true},
    {"dw5x5_c32_s16", 64, 32, 32, 16, 5, 1, 1, true},
    {"dil2_dw3x3_c16_s32", 64, 16, 16, 32, 3, 1, 2, true},
    {"dw5x5_s2_c32_s16", 64, 32, 32, 16, 5, 2, 1, true},
    {"conv1x1_c16_s32", 64, 16, 16, 32, 1, 1, 1, false},
};

bool g_cpu_time = false;

double now_ms() {
  if (!g_cpu_time) {
    const auto t = std::chrono::steady_clock::now().time_since_epoch();
    return std::chrono::duration<double, std::milli>(t).count();
  }
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

double median_ms(int repeats, const std::function<void()>& run) {
  for (int i = 0; i < 3; ++i) run();  // primitive creation, allocator cache
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const double start = now_ms();
    run();
    ms.push_back(now_ms() - start);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  int repeats = 30;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--cpu") g_cpu_time = true;
    if (i + 1 == argc) break;
    if (std::string(argv[i]) == "--repeats") repeats = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--case") only = argv[i + 1];
  }
  set_num_threads(0);
  const Kernel& kernel = backend_for(Device::cpu).kernel(OpKind::conv2d);
  std::printf("threads %d, repeats %d, median %s ms\n", num_threads(), repeats,
              g_cpu_time ? "process CPU" : "wall");
  std::printf("%-20s %8s %8s %8s %8s %8s\n", "case", "fwd", "bwd_data", "bwd_wts", "bwd_both",
              "fwd+both");
  Rng rng(0);
  for (const Case& c : kCases) {
    if (!only.empty() && only != c.name) continue;
    const int pad = c.dilation * (c.kernel - 1) / 2;
    const int64_t out = (c.size + 2 * pad - c.dilation * (c.kernel - 1) - 1) / c.stride + 1;
    const int groups = c.depthwise ? int(c.channels) : 1;
    const Attrs attrs = ConvAttrs{c.stride, pad, c.dilation, groups};
    const Shape xs{c.batch, c.channels, c.size, c.size};
    const Shape ws{c.out_channels, c.channels / groups, c.kernel, c.kernel};
    const Shape ys{c.batch, c.out_channels, out, out};
    const std::vector<Tensor> inputs{normal_tensor(xs, 0, 1, rng), kaiming_uniform(ws, rng),
                                     Tensor()};
    std::vector<Tensor> outputs{Tensor::empty(ys)}, saved;
    const std::vector<Shape> shapes{xs, ws, Shape{}};
    const std::vector<Tensor> dy{normal_tensor(ys, 0, 1, rng)};
    const Tensor dx = Tensor::empty(xs), dw = Tensor::empty(ws);

    auto forward = [&] { kernel.forward({OpKind::conv2d, attrs, inputs, outputs, &saved}); };
    auto backward = [&](Tensor gx, Tensor gw) {
      std::vector<Tensor> grads{gx, gw, Tensor()};
      kernel.backward({OpKind::conv2d, attrs, inputs, shapes, outputs, saved, dy, grads});
    };
    const double f = median_ms(repeats, forward);
    const double bd = median_ms(repeats, [&] { backward(dx, Tensor()); });
    const double bw = median_ms(repeats, [&] { backward(Tensor(), dw); });
    const double both = median_ms(repeats, [&] { backward(dx, dw); });
    std::printf("%-20s %8.3f %8.3f %8.3f %8.3f %8.3f\n", c.name, f, bd, bw, both, f + both);
    std::fflush(stdout);
  }
  return 0;
}
