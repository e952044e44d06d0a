// What a recorded node keeps for its backward depends on the gradients wanted (ops'
// backward_reads rules): a conv keeps its input only for a weight gradient, a weighted sum
// its inputs only for the coefficients' gradient, a batch norm without affine its output
// (x̂) instead of its input, and relu its input where the producer keeps that anyway; a
// value made by a cheap op (relu, depthwise conv) is recomputed in the backward instead of
// kept. Each case checks what is kept and that the gradients equal those of the full set.
#include <vector>

#include <doctest/doctest.h>

#include "engine/autodiff/var.h"
#include "engine/backends/backend.h"
#include "ops/ops.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::random;

const Node& producer_of(const Var& v) {
  REQUIRE(v.impl()->producer != nullptr);
  return *v.impl()->producer;
}

// Sum of y * r for a fixed random r: a loss whose gradient dy = r reaches every element.
Var probe_loss(const Var& y, uint64_t seed) {
  return ops::sum(ops::mul(y, Var(random(y.shape(), seed))));
}

void check_close(const Tensor& a, const Tensor& b, float tolerance) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  for (size_t i = 0; i < x.size(); ++i) CHECK(x[i] == doctest::Approx(y[i]).epsilon(tolerance));
}
}  // namespace

TEST_CASE("backward saves: a conv keeps its input only when its weight wants a gradient") {
  Var x(random({2, 3, 5, 5}, 1), true);
  const Var frozen(random({4, 3, 3, 3}, 2), false);
  const Var trained(random({4, 3, 3, 3}, 2), true);
  const Var y_frozen = ops::conv2d(x, frozen, {}, ConvAttrs{.padding = 1});
  const Var y_trained = ops::conv2d(x, trained, {}, ConvAttrs{.padding = 1});
  CHECK_FALSE(producer_of(y_frozen).saved_inputs[0].defined());
  CHECK(producer_of(y_frozen).saved_inputs[1].defined());
  CHECK(producer_of(y_trained).saved_inputs[0].defined());
  // The data gradient does not need the input.
  probe_loss(y_frozen, 3).backward();
  const Tensor dx_frozen = x.grad().clone();
  x.zero_grad();
  probe_loss(y_trained, 3).backward();
  check_close(dx_frozen, x.grad(), 1e-6f);
  CHECK(trained.has_grad());
}

TEST_CASE("backward saves: a weighted sum keeps its inputs only for the coefficients' gradient") {
  Var a(random({2, 3, 4, 4}, 4), true), b(random({2, 3, 4, 4}, 5), true);
  const Tensor coefficients = random({2, 3}, 6);
  const Var detached(coefficients, false), searched(coefficients.clone(), true);
  const Var y_detached = ops::weighted_sum({a, b}, detached, 1, {0, 2});
  const Var y_searched = ops::weighted_sum({a, b}, searched, 1, {0, 2});
  const Node& kept_nothing = producer_of(y_detached);
  CHECK_FALSE(kept_nothing.saved_inputs[0].defined());
  CHECK_FALSE(kept_nothing.saved_inputs[1].defined());
  CHECK(kept_nothing.saved_inputs[2].defined());
  CHECK(producer_of(y_searched).saved_inputs[0].defined());
  probe_loss(y_detached, 7).backward();
  const Tensor da = a.grad().clone(), db = b.grad().clone();
  a.zero_grad();
  b.zero_grad();
  probe_loss(y_searched, 7).backward();
  check_close(da, a.grad(), 1e-6f);
  check_close(db, b.grad(), 1e-6f);
  // <dy, x_i> landed in the row and columns the sum read.
  const std::vector<float> dc = searched.grad().to_vector();
  CHECK(dc[3] != 0.0f);
  CHECK(dc[5] != 0.0f);
  CHECK(dc[4] == 0.0f);
}

TEST_CASE("backward saves: batch norm without affine keeps x̂ (its output), not its input") {
  const Tensor x0 = random({4, 3, 5, 5}, 8);
  const Var x(x0, true), x_affine(x0.clone(), true);
  const Var gamma(Tensor::full({3}, 1.0f), true), beta(Tensor::zeros({3}), true);
  auto stats = [] { return Var(Tensor::zeros({3})); };
  const Var y = ops::batch_norm(x, {}, {}, stats(), Var(Tensor::full({3}, 1.0f)));
  const Var y_affine =
      ops::batch_norm(x_affine, gamma, beta, stats(), Var(Tensor::full({3}, 1.0f)));
  CHECK_FALSE(producer_of(y).saved_inputs[0].defined());
  REQUIRE(producer_of(y).saved_outputs.size() == 1);
  CHECK(producer_of(y).saved_outputs[0].defined());
  CHECK(producer_of(y_affine).saved_inputs[0].defined());
  CHECK(producer_of(y_affine).saved_outputs.empty());
  probe_loss(y, 9).backward();
  probe_loss(y_affine, 9).backward();
  // gamma = 1 and beta = 0: the same function, its gradient formed from x instead of x̂.
  check_close(x.grad(), x_affine.grad(), 1e-4f);
}

TEST_CASE("backward saves: relu keeps its input where the producer keeps it, else its output") {
  const Tensor x0 = random({4, 3, 5, 5}, 10);
  const Var x(x0, true);
  const Var normed =
      ops::batch_norm(x, {}, {}, Var(Tensor::zeros({3})), Var(Tensor::full({3}, 1.0f)));
  const Var after_bn = ops::relu(normed);
  const Node& reads_input = producer_of(after_bn);
  CHECK(reads_input.saved_inputs[0].defined());
  CHECK(reads_input.saved_outputs.empty());
  const Var w(random({3, 3, 1, 1}, 11), true);
  const Var after_conv = ops::relu(ops::conv2d(x, w));
  const Node& reads_output = producer_of(after_conv);
  CHECK_FALSE(reads_output.saved_inputs[0].defined());
  REQUIRE(reads_output.saved_outputs.size() == 1);
  CHECK(reads_output.saved_outputs[0].defined());

  // The same relu backward from the input's mask as from the output's: compare with a
  // relu fed a copy that no node keeps.
  probe_loss(after_bn, 12).backward();
  const Tensor dx = x.grad().clone();
  const Var x2(x0.clone(), true);
  const Var normed2 =
      ops::batch_norm(x2, {}, {}, Var(Tensor::zeros({3})), Var(Tensor::full({3}, 1.0f)));
  const Var copy = ops::add(normed2, Var(Tensor::zeros(normed2.shape())));
  const Var plain = ops::relu(copy);
  CHECK(producer_of(plain).saved_outputs.size() == 1);
  probe_loss(plain, 12).backward();
  check_close(dx, x2.grad(), 1e-6f);
}

namespace {
// relu -> depthwise 3x3 -> pointwise 1x1, all weights trained (a weight step's separable
// conv); `detour` puts a copy that no node keeps and none can recompute between the convs.
struct SeparableRun {
  Tensor dx, d_depthwise, d_pointwise;
  Var pointwise_out;
};
struct RecomputeLevel {
  explicit RecomputeLevel(Recompute level) { set_recompute(level); }
  ~RecomputeLevel() { set_recompute(Recompute::elementwise); }
};

SeparableRun separable(const Tensor& x0, bool after_bn, bool detour) {
  Var x(x0.clone(), true);
  Var dw(random({3, 1, 3, 3}, 21), true), pw(random({5, 3, 1, 1}, 22), true);
  Var h = x;
  if (after_bn)
    h = ops::batch_norm(h, {}, {}, Var(Tensor::zeros({3})), Var(Tensor::full({3}, 1.0f)));
  Var d = ops::conv2d(ops::relu(h), dw, {}, ConvAttrs{.padding = 1, .groups = 3});
  if (detour) d = ops::add(d, Var(Tensor::zeros(d.shape())));
  const Var y = ops::conv2d(d, pw);
  SeparableRun run{.pointwise_out = y};
  probe_loss(y, 23).backward();
  run.dx = x.grad().clone();
  run.d_depthwise = dw.grad().clone();
  run.d_pointwise = pw.grad().clone();
  return run;
}
}  // namespace

TEST_CASE(
    "backward saves: a depthwise conv's output is recomputed for the next conv's weight gradient") {
  const RecomputeLevel convolutions(Recompute::convolutions);
  const Tensor x0 = random({2, 3, 6, 6}, 20);
  for (const bool after_bn : {false, true}) {
    CAPTURE(after_bn);
    reset_kernel_counts();
    const SeparableRun recomputed = separable(x0, after_bn, false);
    const KernelCounts counts = kernel_counts();
    // The pointwise conv kept nothing of its input and ran the depthwise conv again.
    CHECK(counts.recomputed[size_t(OpKind::conv2d)] == 1);
    // After a batch norm that keeps its output, relu keeps its input, so the depthwise
    // conv's input (relu's output) is itself recomputed, for both convs' backward.
    CHECK(counts.recomputed[size_t(OpKind::relu)] == (after_bn ? 2 : 0));
    const SeparableRun kept = separable(x0, after_bn, true);
    // Same kernels on the same values: the gradients are bit-identical.
    CHECK(recomputed.dx.to_vector() == kept.dx.to_vector());
    CHECK(recomputed.d_depthwise.to_vector() == kept.d_depthwise.to_vector());
    CHECK(recomputed.d_pointwise.to_vector() == kept.d_pointwise.to_vector());
  }
}

TEST_CASE("backward saves: a dense conv's output is kept, not recomputed") {
  reset_kernel_counts();
  Var x(random({2, 3, 6, 6}, 24), true);
  Var w1(random({3, 3, 3, 3}, 25), true), w2(random({4, 3, 1, 1}, 26), true);
  const Var y = ops::conv2d(ops::conv2d(x, w1, {}, ConvAttrs{.padding = 1}), w2);
  const Node& pointwise = producer_of(y);
  CHECK(pointwise.saved_inputs[0].defined());
  CHECK(pointwise.inputs[0].recompute_from == nullptr);
  probe_loss(y, 27).backward();
  CHECK(kernel_counts().recomputed[size_t(OpKind::conv2d)] == 0);
}

TEST_CASE("backward saves: the recompute level decides what is recomputed") {
  const Tensor x0 = random({2, 3, 6, 6}, 28);
  const SeparableRun kept = separable(x0, true, true);
  for (const Recompute level : {Recompute::none, Recompute::elementwise, Recompute::convolutions}) {
    CAPTURE(int(level));
    const RecomputeLevel set(level);
    reset_kernel_counts();
    const SeparableRun run = separable(x0, true, false);
    const KernelCounts counts = kernel_counts();
    // none: nothing; elementwise (the default): the relu for the depthwise conv's weight
    // gradient; convolutions: also the depthwise conv (and its relu input) for the pointwise.
    const int64_t relus = level == Recompute::none ? 0 : level == Recompute::elementwise ? 1 : 2;
    CHECK(counts.recomputed[size_t(OpKind::relu)] == relus);
    CHECK(counts.recomputed[size_t(OpKind::conv2d)] == (level == Recompute::convolutions ? 1 : 0));
    CHECK(run.d_pointwise.to_vector() == kept.d_pointwise.to_vector());
    CHECK(run.d_depthwise.to_vector() == kept.d_depthwise.to_vector());
    CHECK(run.dx.to_vector() == kept.dx.to_vector());
  }
}
