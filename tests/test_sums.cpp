// Sums that join branches (add_n, weighted_sum) and flatten: the op cases
// (tests/support/op_harness.h: every backend against the CPU, the CPU's gradients against
// finite differences), and on the CPU values and coefficient gradients by hand.
#include <cstdint>
#include <limits>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
std::vector<testing::OpCase> sums_cases() {
  Rng rng(3);
  testing::GradCheck weighted;
  weighted.kind = OpKind::weighted_sum;
  weighted.attrs = WeightedSumAttrs{1, {1, 3, 0}};
  for (int i = 0; i < 3; ++i) weighted.inputs.push_back(normal_tensor({2, 3, 2, 2}, 0, 1, rng));
  weighted.inputs.push_back(normal_tensor({2, 4}, 0, 1, rng));
  // Linear in each argument: central differences are exact up to float rounding of sums
  // of ~24 terms, so a tight tolerance holds.
  weighted.atol = 2e-3f;
  weighted.rtol = 2e-3f;

  // A node's sum over two edges: each input at its own row (spec/compile.cpp).
  testing::GradCheck node = weighted;
  node.attrs = WeightedSumAttrs{.row = 0, .columns = {1, 3, 0}, .rows = {0, 0, 2}};
  node.inputs.back() = normal_tensor({3, 4}, 0, 1, rng);

  Rng rng4(4);
  testing::GradCheck add_n;
  add_n.kind = OpKind::add_n;
  for (int i = 0; i < 3; ++i) add_n.inputs.push_back(normal_tensor({2, 5}, 0, 1, rng4));
  add_n.atol = 1e-3f;
  add_n.rtol = 1e-3f;

  return {
      {"row 1, columns 1, 3, 0 of 4; inputs and coefficients", weighted},
      {"rows 0, 0, 2, columns 1, 3, 0 of 4; inputs and coefficients", node},
      {"three inputs, gradient to each", add_n},
      // A copy with a new shape: linear, exact up to rounding.
      {"[2, 3, 2, 2] to [2, 12]",
       testing::spec_of(OpKind::flatten, {testing::random({2, 3, 2, 2}, 5)})},
      // One time step [N, 1, H] of a sequence back to [N, H].
      {"[3, 1, 4] to [3, 4]", testing::spec_of(OpKind::flatten, {testing::random({3, 1, 4}, 6)})},
  };
}
}  // namespace

CELLGRAPH_OP_CASES("sums", sums_cases)

TEST_CASE("weighted_sum: forward is the coefficient-weighted sum of the listed columns") {
  const Tensor x0 = Tensor::from_vector({1, 1, 1, 2}, {1, 2});
  const Tensor x1 = Tensor::from_vector({1, 1, 1, 2}, {10, 20});
  // Two rows of three candidates; the edge reads row 1, its inputs are columns 2 and 0.
  const Tensor coef = Tensor::from_vector({2, 3}, {9, 9, 9, 0.5f, 7, 0.25f});
  const Var y = ops::weighted_sum({Var(x0), Var(x1)}, Var(coef), 1, {2, 0});
  CHECK(y.value().to_vector() == std::vector<float>{0.25f * 1 + 0.5f * 10, 0.25f * 2 + 0.5f * 20});
}

TEST_CASE("weighted_sum: coefficient gradient lands only at the row and columns used") {
  const Var x0(Tensor::from_vector({1, 2}, {1, 2}), true);
  const Var x1(Tensor::from_vector({1, 2}, {3, 4}), true);
  const Var coef(Tensor::from_vector({2, 3}, {0, 0, 0, 0.5f, 0, 2}), true);
  const Var y = ops::weighted_sum({x0, x1}, coef, 1, {0, 2});
  y.backward(Tensor::from_vector({1, 2}, {1, 10}));
  // dcoef[1,0] = <dy, x0> = 1 + 20; dcoef[1,2] = <dy, x1> = 3 + 40.
  CHECK(coef.grad().to_vector() == std::vector<float>{0, 0, 0, 21, 0, 43});
  CHECK(x0.grad().to_vector() == std::vector<float>{0.5f, 5});
  CHECK(x1.grad().to_vector() == std::vector<float>{2, 20});
}

TEST_CASE(
    "weighted_sum: a term at coefficient 0 is left out, yet its coefficient gets a gradient") {
  // NASP's one-hot row: the sum is the selected output alone (a NaN elsewhere does not
  // reach it), while every coefficient still gets <dy, x_i> for the architecture step.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Var x0(Tensor::from_vector({1, 2}, {nan, 1}), false);
  const Var x1(Tensor::from_vector({1, 2}, {3, 4}), true);
  const Var x2(Tensor::from_vector({1, 2}, {5, 6}), false);
  const Var coef(Tensor::from_vector({1, 3}, {0, 1, 0}), true);
  const Var y = ops::weighted_sum({x0, x1, x2}, coef, 0, {0, 1, 2});
  CHECK(y.value().to_vector() == std::vector<float>{3, 4});
  y.backward(Tensor::from_vector({1, 2}, {1, 10}));
  const std::vector<float> g = coef.grad().to_vector();
  CHECK(g[1] == 43.0f);
  CHECK(g[2] == 65.0f);
  CHECK(x1.grad().to_vector() == std::vector<float>{1, 10});
  // Every coefficient 0: zeros.
  const Var none = ops::weighted_sum({x1, x2}, Var(Tensor::zeros({1, 3})), 0, {1, 2});
  CHECK(none.value().to_vector() == std::vector<float>{0, 0});
}

TEST_CASE("add_n: sums any number of inputs") {
  const Var y = ops::add_n({Var(Tensor::full({3}, 1.0f)), Var(Tensor::full({3}, 2.0f))});
  CHECK(y.value().to_vector() == std::vector<float>{3, 3, 3});
}

TEST_CASE("weighted_sum: with a row per input, each term reads its own row") {
  const Var x0(Tensor::from_vector({1, 2}, {1, 2}), true);
  const Var x1(Tensor::from_vector({1, 2}, {3, 4}), true);
  const Var x2(Tensor::from_vector({1, 2}, {5, 6}), true);
  // Rows 0 and 1 of a [2, 2] matrix: x0 at (0, 1), x1 at (1, 0), x2 at (1, 1).
  const Var coef(Tensor::from_vector({2, 2}, {7, 0.5f, 2, 0.25f}), true);
  const Var y = ops::weighted_sum({x0, x1, x2}, coef, std::vector<int32_t>{0, 1, 1}, {1, 0, 1});
  CHECK(y.value().to_vector() ==
        std::vector<float>{0.5f * 1 + 2 * 3 + 0.25f * 5, 0.5f * 2 + 2 * 4 + 0.25f * 6});
  y.backward(Tensor::from_vector({1, 2}, {1, 10}));
  // dcoef[r, c] = <dy, x_i> at each input's own (row, column); (0, 0) is read by none.
  CHECK(coef.grad().to_vector() == std::vector<float>{0, 21, 43, 65});
  CHECK(x1.grad().to_vector() == std::vector<float>{2, 20});
  CHECK(x2.grad().to_vector() == std::vector<float>{0.25f, 2.5f});
}

// The CPU kernels run in blocks of up to 65536 elements (engine/backends/cpu/sums.cpp): at
// one or two threads two whole blocks and a partial one, at more threads more and smaller
// blocks. Small whole numbers, so every sum is exact.
TEST_CASE("weighted_sum: tensors of several blocks, forward and both gradients") {
  const int64_t n = 2 * 65536 + 37;
  const auto size = static_cast<size_t>(n);
  std::vector<float> a(size), b(size), g(size);
  double want_a = 0, want_b = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = size_t(i);
    a[k] = float(i % 5);
    b[k] = float((i / 3) % 4);
    g[k] = float((i / 7) % 3);
    want_a += double(g[k]) * a[k];
    want_b += double(g[k]) * b[k];
  }
  const Var x0(Tensor::from_vector({n}, a), true);
  const Var x1(Tensor::from_vector({n}, b), true);
  const Var coef(Tensor::from_vector({1, 2}, {0.5f, 2.0f}), true);
  const Var y = ops::weighted_sum({x0, x1}, coef, 0, {0, 1});
  y.backward(Tensor::from_vector({n}, g));
  const std::vector<float> out = y.value().to_vector();
  const std::vector<float> d0 = x0.grad().to_vector(), d1 = x1.grad().to_vector();
  int64_t wrong = 0;
  for (size_t k = 0; k < size; ++k)
    wrong += int64_t(out[k] != 0.5f * a[k] + 2.0f * b[k]) + int64_t(d0[k] != 0.5f * g[k]) +
             int64_t(d1[k] != 2.0f * g[k]);
  CHECK(wrong == 0);
  CHECK(coef.grad().to_vector() == std::vector<float>{float(want_a), float(want_b)});
}

TEST_CASE("weighted_sum: mismatched columns or rows are user errors") {
  const Var x(Tensor::zeros({1, 2}));
  const Var coef(Tensor::zeros({2, 3}));
  CHECK_THROWS_AS(ops::weighted_sum({x}, coef, 2, {0}), Error);
  CHECK_THROWS_AS(ops::weighted_sum({x}, coef, 0, {3}), Error);
  CHECK_THROWS_AS(ops::weighted_sum({x, x}, coef, 0, {0}), Error);
  CHECK_THROWS_AS(ops::weighted_sum({x, x}, coef, std::vector<int32_t>{0}, {0, 1}), Error);
  CHECK_THROWS_AS(ops::weighted_sum({x}, coef, std::vector<int32_t>{2}, {0}), Error);
}
