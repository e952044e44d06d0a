// Data-movement ops: concat, split, slice, zero, reshape, sum. The op cases
// (tests/support/op_harness.h: every backend against the CPU, the CPU's gradients against
// finite differences), and on the CPU values by position.
//
// Tolerances: gradcheck defaults (eps 1e-2, atol 1e-3, rtol 1e-2). Every op here is
// linear in its input, so central differences are exact up to float32 rounding of L
// (~1e-7 |L| / eps, about 1e-5 for these sizes).
#include <cmath>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/bits.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::random;
using testing::spec_of;

// 0, 1, 2, ... in row-major order: every element names its own position.
Tensor iota(const Shape& shape) {
  std::vector<float> v(size_t(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return Tensor::from_vector(shape, v);
}

// Uniform values in +-[0.1, 1.1): never within a gradcheck step of relu's kink at 0.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(size_t(shape.numel()));
  for (float& x : v) x = (rng.uniform() < 0.5f ? -1.0f : 1.0f) * rng.uniform(0.1f, 1.1f);
  return Tensor::from_vector(shape, v);
}

std::vector<testing::OpCase> shape_ops_cases() {
  return {
      {"four NCHW pieces", spec_of(OpKind::concat,
                                   {random({2, 1, 2, 3}, 1), random({2, 2, 2, 3}, 2),
                                    random({2, 3, 2, 3}, 3), random({2, 1, 2, 3}, 4)},
                                   ConcatAttrs{})},
      // Rectifying (a search network's cell output and the ReLU the compiler folds in),
      // inputs away from the kink at 0, as relu's own case.
      {"rectifying, three NCHW pieces",
       spec_of(OpKind::concat,
               {away_from_zero({2, 2, 3, 3}, 20), away_from_zero({2, 1, 3, 3}, 21),
                away_from_zero({2, 3, 3, 3}, 22)},
               ConcatAttrs{.relu = true})},
      {"three pieces, gradient through all outputs",
       spec_of(OpKind::split, {random({2, 6, 2, 2}, 7)}, SplitAttrs{{2, 1, 3}})},
      {"steps 2 and 3, gradient scattered into zeros",
       spec_of(OpKind::slice, {random({2, 3, 4, 5}, 8)},
               SliceAttrs{{0, 1, 1, 0}, {2, 3, 5, 5}, {1, 1, 2, 3}})},
      // No gradient (the schema differentiates no input): outputs and shapes only.
      {"stride 2", spec_of(OpKind::zero, {random({2, 3, 5, 4}, 11)}, ZeroAttrs{2})},
      {"2 x 6 to 4 x 3", spec_of(OpKind::reshape, {random({2, 6}, 9)}, ReshapeAttrs{Shape{4, 3}})},
      {"3-d", spec_of(OpKind::sum, {random({2, 3, 2}, 10)})},
      // The shapes of an unrolled recurrent network: time steps [N, 1, H] stacked into
      // [N, T, H], [x, h] joined and [c, h] split on 2-D [N, 2H], one step sliced out.
      {"3-d time steps",
       spec_of(OpKind::concat,
               {random({2, 1, 4}, 12), random({2, 1, 4}, 13), random({2, 1, 4}, 14)},
               ConcatAttrs{})},
      {"2-d rows",
       spec_of(OpKind::concat, {random({3, 4}, 15), random({3, 2}, 16)}, ConcatAttrs{})},
      {"2-d halves", spec_of(OpKind::split, {random({3, 8}, 17)}, SplitAttrs{{4, 4}})},
      {"one step of [N, T, H]", spec_of(OpKind::slice, {random({2, 5, 3}, 18)},
                                        SliceAttrs{{0, 2, 0}, {2, 3, 3}, {1, 1, 1}})},
      {"keep_batch [N, 6] to [N, 1, 6]",
       spec_of(OpKind::reshape, {random({3, 6}, 19)}, ReshapeAttrs{Shape{1, 1, 6}, true})},
  };
}
}  // namespace

CELLGRAPH_OP_CASES("shape_ops", shape_ops_cases)

TEST_CASE("concat: joins channels per sample") {
  const Var a(Tensor::from_vector({2, 1, 2}, {1, 2, 3, 4}));
  const Var b(Tensor::from_vector({2, 2, 2}, {10, 11, 12, 13, 14, 15, 16, 17}));
  const Var y = ops::concat({a, b});
  CHECK(y.shape() == Shape{2, 3, 2});
  CHECK(y.value().to_vector() == std::vector<float>{1, 2, 10, 11, 12, 13, 3, 4, 14, 15, 16, 17});
  const Var rank2 = ops::concat(
      {Var(Tensor::from_vector({2, 1}, {1, 2})), Var(Tensor::from_vector({2, 2}, {3, 4, 5, 6}))});
  CHECK(rank2.value().to_vector() == std::vector<float>{1, 3, 4, 2, 5, 6});
}

// The compiler folds a search network's preprocessing ReLU into the cell output's concat
// (spec/fold_concat_relu.h) on the promise that nothing changes: forward and gradients bit
// for bit those of relu(concat(...)), NaN, infinities and signed zeros included (relu maps
// a NaN and -0 to +0, and its gradient there is dy times 0).
TEST_CASE("concat: rectifying equals relu of the concat, bit for bit, special values too") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  std::vector<float> special = {nan, -nan, -inf, inf, -0.0f, 0.0f, -1e-45f, 1e-45f};
  Rng rng(5);
  // Pieces of 8 x 8 planes, 64 floats each, the special values spread over them.
  std::vector<Tensor> pieces;
  for (int64_t c : {1, 3, 2}) {
    std::vector<float> v(size_t(2 * c * 64));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = i % 5 == 0 ? special[(i / 5) % special.size()] : rng.normal();
    pieces.push_back(Tensor::from_vector({2, c, 8, 8}, v));
  }
  Tensor dy = normal_tensor({2, 6, 8, 8}, 0, 1, rng);  // both signs: -0 where masked
  dy.data()[0] = -inf;  // at x = NaN, masked: the gradient is NaN, as relu gives
  auto run = [&](bool fused, std::vector<Tensor>& grads) {
    std::vector<Var> xs;
    xs.reserve(pieces.size());
    for (const Tensor& p : pieces) xs.emplace_back(p, true);
    const Var y = fused ? ops::concat(xs, ConcatAttrs{.relu = true}) : ops::relu(ops::concat(xs));
    y.backward(dy);
    for (const Var& x : xs) grads.push_back(x.grad());
    return y.value();
  };
  std::vector<Tensor> fused_grads, plain_grads;
  const Tensor fused = run(true, fused_grads), plain = run(false, plain_grads);
  CHECK(testing::same_bits(fused.to_vector(), plain.to_vector()));
  for (size_t i = 0; i < pieces.size(); ++i)
    CHECK(testing::same_bits(fused_grads[i].to_vector(), plain_grads[i].to_vector()));
}

TEST_CASE("concat: only the inputs that want a gradient get one") {
  const Var a(random({1, 2, 2}, 5), true), b(random({1, 3, 2}, 6), false);
  const Var y = ops::concat({a, b});
  y.backward(iota({1, 5, 2}));
  CHECK(a.grad().to_vector() == std::vector<float>{0, 1, 2, 3});
  CHECK_FALSE(b.has_grad());
}

TEST_CASE("concat: inputs that disagree outside channels are a user error") {
  CHECK_THROWS_AS(ops::concat({Var(Tensor::zeros({2, 1, 3})), Var(Tensor::zeros({2, 1, 4}))}),
                  Error);
}

TEST_CASE("split: pieces along channels, and concat undoes it") {
  const Tensor x = iota({2, 3, 2});
  const std::vector<Var> parts = ops::split(Var(x), {1, 2});
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].value().to_vector() == std::vector<float>{0, 1, 6, 7});
  CHECK(parts[1].value().to_vector() == std::vector<float>{2, 3, 4, 5, 8, 9, 10, 11});
  CHECK(ops::concat(parts).value().to_vector() == x.to_vector());
  CHECK_THROWS_AS(ops::split(Var(x), {1, 1}), Error);
}

TEST_CASE("slice: pixel shift with the end clamped to the extent") {
  // DARTS' factorized reduce shifts by one pixel: x[:, :, 1:, 1:].
  const Tensor x = iota({1, 2, 3, 3});
  const SliceAttrs shift{{0, 0, 1, 1}, {1, 2, 100, 100}, {1, 1, 1, 1}};
  const Var y = ops::slice(Var(x), shift);
  CHECK(y.shape() == Shape{1, 2, 2, 2});
  CHECK(y.value().to_vector() == std::vector<float>{4, 5, 7, 8, 13, 14, 16, 17});
}

TEST_CASE("slice: steps in several dimensions, ranks 1 to 5") {
  const Var v1 = ops::slice(Var(iota({7})), SliceAttrs{{1}, {7}, {3}});
  CHECK(v1.value().to_vector() == std::vector<float>{1, 4});
  const Var v3 = ops::slice(Var(iota({2, 3, 4})), SliceAttrs{{1, 0, 1}, {2, 3, 4}, {1, 2, 2}});
  CHECK(v3.value().to_vector() == std::vector<float>{13, 15, 21, 23});
  const Var v5 = ops::slice(Var(iota({2, 2, 2, 2, 3})),
                            SliceAttrs{{1, 0, 1, 0, 2}, {2, 2, 2, 1, 3}, {1, 1, 1, 1, 1}});
  // Elements [1, c, 1, 0, 2] for c = 0, 1: 24 + 12c + 6 + 2.
  CHECK(v5.value().to_vector() == std::vector<float>{32, 44});
  CHECK_THROWS_AS(ops::slice(Var(iota({4})), SliceAttrs{{4}, {9}, {1}}), Error);
}

TEST_CASE("slice: gradient scatters into zeros") {
  const Var x(Tensor::zeros({5}), true);
  ops::slice(x, SliceAttrs{{1}, {5}, {2}}).backward(Tensor::from_vector({2}, {7, 9}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 7, 0, 9, 0});
}

TEST_CASE("zero: fills zeros, divides H and W by the stride, records nothing") {
  const Var x(Tensor::full({2, 3, 5, 4}, 3.0f), true);
  const Var y = ops::zero(x);
  CHECK(y.value().to_vector() == std::vector<float>(120, 0.0f));
  const Var strided = ops::zero(x, 2);
  CHECK(strided.shape() == Shape{2, 3, 3, 2});
  CHECK(strided.value().to_vector() == std::vector<float>(36, 0.0f));
  CHECK_FALSE(y.requires_grad());
  CHECK(y.is_leaf());
}

TEST_CASE("reshape: same data, new shape, gradient copied back") {
  const Tensor x = iota({2, 6});
  const Var y = ops::reshape(Var(x), {3, 2, 2});
  CHECK(y.shape() == Shape{3, 2, 2});
  CHECK(y.value().to_vector() == x.to_vector());
  CHECK_FALSE(y.value().shares_storage_with(x));
  CHECK_THROWS_AS(ops::reshape(Var(x), {5}), Error);
}

TEST_CASE("sum: adds every element into one, accumulating in double") {
  CHECK(ops::sum(Var(iota({3, 4}))).value().item() == 66.0f);
  // 2^24 + 1 ones and a float running sum would stop at 2^24; double does not.
  const int64_t n = (int64_t(1) << 24) + 2;
  const float total = ops::sum(Var(Tensor::full({n}, 1.0f))).value().item();
  CHECK(double(total) == doctest::Approx(double(n)).epsilon(1e-7));
  CHECK(total > 16777216.0f);
}

TEST_CASE("sum: gradient broadcasts the output gradient") {
  const Var x(Tensor::zeros({2, 2}), true);
  ops::sum(x).backward(Tensor::from_vector({1}, {2.5f}));
  CHECK(x.grad().to_vector() == std::vector<float>{2.5f, 2.5f, 2.5f, 2.5f});
}
