#include <limits>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/gradcheck.h"

using namespace cellgraph;

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

TEST_CASE("weighted_sum: finite differences for the inputs and the coefficients") {
  Rng rng(3);
  testing::GradCheck g;
  g.kind = OpKind::weighted_sum;
  g.attrs = WeightedSumAttrs{1, {1, 3, 0}};
  for (int i = 0; i < 3; ++i) g.inputs.push_back(normal_tensor({2, 3, 2, 2}, 0, 1, rng));
  g.inputs.push_back(normal_tensor({2, 4}, 0, 1, rng));
  // Linear in each argument: central differences are exact up to float rounding of sums
  // of ~24 terms, so a tight tolerance holds.
  g.atol = 2e-3f;
  g.rtol = 2e-3f;
  CHECK_GRADIENTS(g);
}

TEST_CASE("add_n: sums any number of inputs, gradient flows to each") {
  Rng rng(4);
  testing::GradCheck g;
  g.kind = OpKind::add_n;
  for (int i = 0; i < 3; ++i) g.inputs.push_back(normal_tensor({2, 5}, 0, 1, rng));
  g.atol = 1e-3f;
  g.rtol = 1e-3f;
  CHECK_GRADIENTS(g);
  const Var y = ops::add_n({Var(Tensor::full({3}, 1.0f)), Var(Tensor::full({3}, 2.0f))});
  CHECK(y.value().to_vector() == std::vector<float>{3, 3, 3});
}

TEST_CASE("weighted_sum: mismatched columns or rows are user errors") {
  const Var x(Tensor::zeros({1, 2}));
  const Var coef(Tensor::zeros({2, 3}));
  CHECK_THROWS_AS(ops::weighted_sum({x}, coef, 2, {0}), Error);
  CHECK_THROWS_AS(ops::weighted_sum({x}, coef, 0, {3}), Error);
  CHECK_THROWS_AS(ops::weighted_sum({x, x}, coef, 0, {0}), Error);
}
