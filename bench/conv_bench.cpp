// Micro-benchmark: forward + backward (input and weight gradients) or, with
// --forward-only, the forward alone, of the convolution shapes a DARTS search runs most, through
// the full engine path (dispatcher, autodiff, oneDNN kernels). Prints JSON: one entry per case with
// the median over repeats. The same cases run through PyTorch in bench/conv_bench_torch.py;
// bench/compare.py prints the two side by side.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_cases.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "ops/ops.h"

using namespace cellgraph;

namespace {
struct Built {
  std::vector<Var> leaves;  // x and weights: every gradient is formed
  std::function<Var()> forward;
};

Built build(const bench::ConvCase& c, Rng& rng) {
  Built b;
  Var x(normal_tensor({c.batch, c.channels, c.size, c.size}, 0, 1, rng), true);
  b.leaves.push_back(x);
  const int64_t group_in = c.depthwise ? 1 : c.channels;
  Var w(kaiming_uniform({c.out_channels, group_in, c.kernel, c.kernel}, rng), true);
  b.leaves.push_back(w);
  ConvAttrs attrs{c.stride, c.dilation * (c.kernel - 1) / 2, c.dilation,
                  c.depthwise ? int(c.channels) : 1};
  if (!c.separable) {
    b.forward = [x, w, attrs] { return ops::conv2d(x, w, {}, attrs); };
    return b;
  }
  // DARTS separable block: ReLU -> depthwise kxk -> pointwise 1x1 -> BN (no affine).
  Var pw(kaiming_uniform({c.out_channels, c.out_channels, 1, 1}, rng), true);
  b.leaves.push_back(pw);
  Var mean(Tensor::zeros({c.out_channels})), var(Tensor::full({c.out_channels}, 1.0f));
  b.forward = [=] {
    Var h = ops::conv2d(ops::relu(x), w, {}, attrs);
    h = ops::conv2d(h, pw);
    return ops::batch_norm(h, {}, {}, mean, var, BatchNormAttrs{});
  };
  return b;
}

double time_once(Built& b, bool forward_only) {
  for (Var& v : b.leaves) v.zero_grad();
  const auto start = std::chrono::steady_clock::now();
  Var y = b.forward();
  if (!forward_only) y.backward(Tensor::full(y.shape(), 1.0f));
  const auto stop = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(stop - start).count();
}
}  // namespace

int main(int argc, char** argv) {
  int repeats = 20;
  bool forward_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--forward-only") forward_only = true;
    if (flag == "--repeats" && i + 1 < argc) repeats = std::max(1, std::atoi(argv[i + 1]));
  }
  set_num_threads(0);
  Rng rng(0);
  std::printf(
      "{\"engine\": \"cellgraph\", \"threads\": %d, \"repeats\": %d, \"pass\": \"%s\", "
      "\"cases\": [\n",
      num_threads(), repeats, forward_only ? "forward" : "forward+backward");
  const auto& cases = bench::conv_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    Built b = build(cases[i], rng);
    for (int w = 0; w < 3; ++w)
      time_once(b, forward_only);  // warm-up: primitive creation, allocator cache
    std::vector<double> ms;
    ms.reserve(size_t(repeats));
    for (int r = 0; r < repeats; ++r) ms.push_back(time_once(b, forward_only));
    std::sort(ms.begin(), ms.end());
    std::printf("  {\"name\": \"%s\", \"median_ms\": %.4f, \"min_ms\": %.4f}%s\n", cases[i].name,
                ms[ms.size() / 2], ms.front(), i + 1 < cases.size() ? "," : "");
  }
  std::printf("]}\n");
  return 0;
}
