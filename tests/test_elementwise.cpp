// Element-wise ops: the op cases (tests/support/op_harness.h: every backend against the
// CPU, the CPU's gradients against finite differences), and on the CPU forward values
// against hand-computed references, in-place add, scale's scalar gradient, dropout's mask.
//
// Tolerances: the gradcheck defaults (eps 1e-2, atol 1e-3, rtol 1e-2) unless stated. For
// these smooth ops the central-difference truncation error is ~eps^2 |f'''| <= 1e-4 and
// float32 rounding of L adds ~1e-7 |L| / eps ~ 1e-5 for the small tensors used here.
// relu and dropout are piecewise linear: the inputs keep |x| >= 0.1 > eps so no
// difference straddles the kink, and then the check is exact up to rounding.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;
using cellgraph::testing::GradCheck;

namespace {
using testing::random;
using testing::spec_of;

// Uniform values in +-[0.1, 1.1): never within a gradcheck step of relu's kink at 0.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(size_t(shape.numel()));
  for (float& x : v) x = (rng.uniform() < 0.5f ? -1.0f : 1.0f) * rng.uniform(0.1f, 1.1f);
  return Tensor::from_vector(shape, v);
}

std::vector<float> values(const Var& v) { return v.value().to_vector(); }

std::vector<testing::OpCase> elementwise_cases() {
  // scale: L is linear in each of x and s, so central differences are exact up to
  // rounding; the second case wants only the coefficient's gradient (x wants none).
  GradCheck only_s =
      spec_of(OpKind::scale, {random({2, 3, 4, 4}, 13), Tensor::from_vector({1}, {0.7f})});
  only_s.check = {1};
  return {
      {"4-d, away from the kink", spec_of(OpKind::relu, {away_from_zero({2, 3, 4, 4}, 1)})},
      {"4-d in [-2, 2)", spec_of(OpKind::tanh, {random({2, 3, 3, 3}, 3, -2, 2)})},
      {"4-d in [-3, 3)", spec_of(OpKind::sigmoid, {random({2, 3, 3, 3}, 5, -3, 3)})},
      {"2-d", spec_of(OpKind::negate, {random({2, 5}, 6)})},
      {"both operands", spec_of(OpKind::add, {random({2, 3, 2, 2}, 7), random({2, 3, 2, 2}, 8)})},
      {"both operands", spec_of(OpKind::mul, {random({3, 4, 2}, 11), random({3, 4, 2}, 12)})},
      {"input and coefficient",
       spec_of(OpKind::scale, {random({2, 3, 4, 4}, 13), Tensor::from_vector({1}, {0.7f})})},
      {"coefficient only", only_s},
      // The gradient uses the same mask as the forward.
      {"training, p 0.4",
       spec_of(OpKind::dropout, {away_from_zero({2, 3, 4, 4}, 18)}, DropoutAttrs{0.4f, true, 99})},
      {"eval",
       spec_of(OpKind::dropout, {away_from_zero({2, 8}, 19)}, DropoutAttrs{0.4f, false, 99})},
      // Embedding dropout: whole rows of a [V, D] weight.
      {"rows of a 2-d weight, p 0.5",
       spec_of(OpKind::dropout, {away_from_zero({6, 4}, 20)},
               DropoutAttrs{.p = 0.5f, .training = true, .seed = 5, .mask_key = 0, .rows = true})},
      {"2-d, by a factor",
       spec_of(OpKind::scale, {random({3, 4}, 21), Tensor::from_vector({1}, {0.125f})})},
      // The gradient uses the forward's per-sample mask; drop_path is linear, the inputs
      // stay away from 0 anyway so the differences of L are well above rounding.
      {"training, p 0.5", spec_of(OpKind::drop_path, {away_from_zero({6, 3, 4, 4}, 3)},
                                  DropPathAttrs{0.5f, true, 11})},
      {"eval",
       spec_of(OpKind::drop_path, {away_from_zero({4, 8}, 4)}, DropPathAttrs{0.5f, false, 11})},
  };
}
}  // namespace

CELLGRAPH_OP_CASES("elementwise", elementwise_cases)

TEST_CASE("relu: forward clamps negatives to zero") {
  const Var x(Tensor::from_vector({2, 3}, {-2, -0.5f, 0, 0.5f, 1, 3}));
  CHECK(values(ops::relu(x)) == std::vector<float>{0, 0, 0, 0.5f, 1, 3});
}

TEST_CASE("tanh: forward matches std::tanh") {
  const Tensor x = random({3, 5}, 2, -3.0f, 3.0f);
  const std::vector<float> in = x.to_vector(), out = values(ops::tanh(Var(x)));
  for (size_t i = 0; i < in.size(); ++i) CHECK(out[i] == doctest::Approx(std::tanh(in[i])));
}

TEST_CASE("sigmoid: forward matches 1 / (1 + exp(-x))") {
  const Tensor x = random({4, 4}, 4, -5.0f, 5.0f);
  const std::vector<float> in = x.to_vector(), out = values(ops::sigmoid(Var(x)));
  for (size_t i = 0; i < in.size(); ++i)
    CHECK(out[i] == doctest::Approx(1.0 / (1.0 + std::exp(-double(in[i])))));
}

TEST_CASE("negate: forward flips the sign") {
  CHECK(values(ops::negate(Var(Tensor::from_vector({3}, {1, -2, 0.5f})))) ==
        std::vector<float>{-1, 2, -0.5f});
}

TEST_CASE("add: forward sums element by element") {
  const Var a(Tensor::from_vector({2, 2}, {1, 2, 3, 4}));
  const Var b(Tensor::from_vector({2, 2}, {10, 20, 30, 40}));
  CHECK(values(ops::add(a, b)) == std::vector<float>{11, 22, 33, 44});
}

TEST_CASE("add: works in place with the output aliasing the first input") {
  // autodiff accumulates gradients as dst = dst + src through this kernel.
  const int64_t n = 1000;
  Tensor dst = random({n}, 9), src = random({n}, 10);
  const std::vector<float> before = dst.to_vector(), addend = src.to_vector();
  const Tensor ins[2] = {dst, src};
  Tensor outs[1] = {dst};
  const Attrs attrs = NoAttrs{};
  backend_for(Device::cpu)
      .kernel(OpKind::add)
      .forward(ForwardCall{OpKind::add, attrs, ins, outs, nullptr});
  const std::vector<float> after = dst.to_vector();
  for (size_t i = 0; i < after.size(); ++i) CHECK(after[i] == before[i] + addend[i]);
}

TEST_CASE("add: operands of different shapes are a user error") {
  const Var a(Tensor::zeros({2, 3})), b(Tensor::zeros({3, 2}));
  CHECK_THROWS_AS(ops::add(a, b), Error);
  CHECK_THROWS_AS(ops::mul(a, b), Error);
}

TEST_CASE("mul: forward multiplies element by element") {
  const Var a(Tensor::from_vector({3}, {1, -2, 3}));
  const Var b(Tensor::from_vector({3}, {4, 5, -6}));
  CHECK(values(ops::mul(a, b)) == std::vector<float>{4, -10, -18});
}

TEST_CASE("scale: forward multiplies by the one-element factor") {
  const Var x(Tensor::from_vector({2, 2}, {1, 2, -3, 4}));
  const Var s(Tensor::from_vector({1}, {0.5f}));
  CHECK(values(ops::scale(x, s)) == std::vector<float>{0.5f, 1, -1.5f, 2});
  CHECK_THROWS_AS(ops::scale(x, Var(Tensor::zeros({2}))), Error);
}

TEST_CASE("scale: the coefficient's gradient is sum(dy * x), accumulated in double") {
  // A feature map of 2^20 elements: a float running sum would drift visibly here.
  const int64_t n = int64_t(1) << 20;
  const Tensor x = random({n}, 14, 0.0f, 1.0f), dy = random({n}, 15, 0.0f, 1.0f);
  const Var xv(x, true), s(Tensor::from_vector({1}, {2.0f}), true);
  const Var y = ops::scale(xv, s);
  y.backward(dy);
  const std::vector<float> xs = x.to_vector(), gs = dy.to_vector();
  double expected = 0;
  for (size_t i = 0; i < xs.size(); ++i) expected += double(xs[i]) * double(gs[i]);
  CHECK(double(s.grad().item()) == doctest::Approx(expected).epsilon(1e-6));
  const std::vector<float> dx = xv.grad().to_vector();
  for (size_t i = 0; i < 16; ++i) CHECK(dx[i] == 2.0f * gs[i]);
}

TEST_CASE("dropout: eval mode and p = 0 copy the input") {
  const Tensor x = random({4, 8}, 16);
  CHECK(values(ops::dropout(Var(x), 0.5f, false, 3)) == x.to_vector());
  CHECK(values(ops::dropout(Var(x), 0.0f, true, 3)) == x.to_vector());
}

TEST_CASE("dropout: keeps element i iff hash_uniform(seed, i) >= p, scaled by 1 / (1 - p)") {
  const float p = 0.3f;
  const uint64_t seed = 1234;
  const Tensor x = away_from_zero({4, 64}, 17);
  const std::vector<float> in = x.to_vector(), out = values(ops::dropout(Var(x), p, true, seed));
  int kept = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const bool keep = hash_uniform(seed, i) >= p;
    kept += keep;
    CHECK(out[i] == (keep ? in[i] * (1.0f / (1.0f - p)) : 0.0f));
  }
  CHECK(kept > 140);  // ~70% of 256 kept
  CHECK(kept < 220);
  CHECK(values(ops::dropout(Var(x), p, true, seed + 1)) != out);
}

TEST_CASE("dropout: rows keeps row r iff hash_uniform(seed, r) >= p, whole rows scaled") {
  const float p = 0.5f;
  const uint64_t seed = 5;  // the op case's: it drops some rows and keeps others
  const Tensor w = away_from_zero({6, 4}, 20);
  DropoutAttrs a{.p = p, .training = true, .seed = seed, .mask_key = 0, .rows = true};
  const std::vector<float> in = w.to_vector(),
                           out = values(ops::apply(OpKind::dropout, a, {Var(w)})[0]);
  int kept = 0;
  for (int64_t r = 0; r < 6; ++r) {
    const bool keep = hash_uniform(seed, uint64_t(r)) >= p;
    kept += keep;
    for (int64_t d = 0; d < 4; ++d) {
      const size_t i = size_t(r * 4 + d);
      CHECK(out[i] == (keep ? in[i] * 2.0f : 0.0f));
    }
  }
  CHECK(kept > 0);
  CHECK(kept < 6);
}

TEST_CASE("drop_path: the op cases' seed drops some samples and keeps others") {
  // So that the drop_path cases above check both branches of the gradient.
  int kept = 0;
  for (uint64_t n = 0; n < 6; ++n) kept += hash_uniform(11, n) >= 0.5f;
  CHECK(kept > 0);
  CHECK(kept < 6);
}
