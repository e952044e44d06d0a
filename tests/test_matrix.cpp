// Matrix ops: the op cases (tests/support/op_harness.h: every backend against the CPU, the
// CPU's gradients, which read operands transposed, against finite differences), and on the
// CPU linear and matmul against naive triple loops, and embedding.
//
// Tolerances: gradcheck defaults (eps 1e-2, atol 1e-3, rtol 1e-2). linear and matmul are
// bilinear, so central differences are exact but for float32 rounding of L (~1e-7 |L| /
// eps, about 1e-5 here); embedding is linear in its weight. Forward values use a relative
// 1e-5 against double references: a K-term float dot product rounds to ~K * 6e-8.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/errors.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::random;
using testing::spec_of;

// c[i,j] = sum_k a(i,k) b(k,j) in double, with accessors choosing the layouts.
template <typename A, typename B>
std::vector<double> naive_product(int64_t m, int64_t n, int64_t k, A a, B b) {
  std::vector<double> c(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t q = 0; q < k; ++q) c[size_t(i * n + j)] += double(a(i, q)) * double(b(q, j));
  return c;
}

std::vector<testing::OpCase> matrix_cases() {
  return {
      {"input, weight and bias",
       spec_of(OpKind::linear, {random({4, 6}, 4), random({3, 6}, 5), random({3}, 6)})},
      {"no bias", spec_of(OpKind::linear, {random({3, 5}, 7), random({2, 5}, 8), {}})},
      // A decoder over every time step at once: x [N, T, K].
      {"3-d input, weight and bias",
       spec_of(OpKind::linear, {random({2, 3, 5}, 14), random({4, 5}, 15), random({4}, 16)})},
      {"3-d input, no bias",
       spec_of(OpKind::linear, {random({2, 3, 5}, 17), random({4, 5}, 18), {}})},
      // Token sequences [N, T] -> [N, T, D]; row 2 is read three times.
      {"2-d indices",
       spec_of(OpKind::embedding,
               {random({4, 3}, 19), Tensor::from_vector({2, 3}, {2, 0, 2, 3, 2, 1})})},
      {"both operands", spec_of(OpKind::matmul, {random({3, 5}, 11), random({5, 4}, 12)})},
      // The weight gradient scatter-adds; row 1 is read twice, rows 2 and 4 never.
      {"repeated rows",
       spec_of(OpKind::embedding, {random({5, 3}, 13), Tensor::from_vector({4}, {1, 3, 1, 0})})},
  };
}
}  // namespace

CELLGRAPH_OP_CASES("matrix", matrix_cases)

TEST_CASE("linear: forward is x w^T + b") {
  const int64_t n = 5, k = 7, m = 3;
  const Tensor x = random({n, k}, 1), w = random({m, k}, 2), b = random({m}, 3);
  const std::vector<float> xs = x.to_vector(), ws = w.to_vector(), bs = b.to_vector();
  const std::vector<double> ref = naive_product(
      n, m, k, [&](int64_t i, int64_t q) { return xs[size_t(i * k + q)]; },
      [&](int64_t q, int64_t j) { return ws[size_t(j * k + q)]; });
  const std::vector<float> with_bias = ops::linear(Var(x), Var(w), Var(b)).value().to_vector();
  const std::vector<float> without = ops::linear(Var(x), Var(w)).value().to_vector();
  REQUIRE(with_bias.size() == size_t(n * m));
  for (size_t i = 0; i < ref.size(); ++i) {
    CHECK(without[i] == doctest::Approx(ref[i]).epsilon(1e-5));
    CHECK(with_bias[i] == doctest::Approx(ref[i] + bs[i % size_t(m)]).epsilon(1e-5));
  }
}

TEST_CASE("linear: exact small case by hand") {
  const Var x(Tensor::from_vector({1, 2}, {1, 2}));
  const Var w(Tensor::from_vector({2, 2}, {1, 0, 3, 4}));
  const Var b(Tensor::from_vector({2}, {0.5f, -1}));
  CHECK(ops::linear(x, w, b).value().to_vector() == std::vector<float>{1.5f, 10});
}

TEST_CASE("linear: feature mismatch is a user error") {
  CHECK_THROWS_AS(ops::linear(Var(Tensor::zeros({2, 3})), Var(Tensor::zeros({4, 5}))), Error);
}

TEST_CASE("matmul: forward matches the naive product") {
  const int64_t m = 6, k = 9, n = 4;
  const Tensor a = random({m, k}, 9), b = random({k, n}, 10);
  const std::vector<float> as = a.to_vector(), bs = b.to_vector();
  const std::vector<double> ref = naive_product(
      m, n, k, [&](int64_t i, int64_t q) { return as[size_t(i * k + q)]; },
      [&](int64_t q, int64_t j) { return bs[size_t(q * n + j)]; });
  const std::vector<float> out = ops::matmul(Var(a), Var(b)).value().to_vector();
  REQUIRE(out.size() == ref.size());
  for (size_t i = 0; i < ref.size(); ++i) CHECK(out[i] == doctest::Approx(ref[i]).epsilon(1e-5));
}

TEST_CASE("matmul: inner extent mismatch is a user error") {
  CHECK_THROWS_AS(ops::matmul(Var(Tensor::zeros({2, 3})), Var(Tensor::zeros({2, 3}))), Error);
}

TEST_CASE("embedding: forward gathers the indexed rows") {
  const Var weight(Tensor::from_vector({3, 2}, {0, 1, 10, 11, 20, 21}));
  const Var indices(Tensor::from_vector({4}, {2, 0, 2, 1}));
  CHECK(ops::embedding(weight, indices).value().to_vector() ==
        std::vector<float>{20, 21, 0, 1, 20, 21, 10, 11});
}

TEST_CASE("embedding: weight gradient scatter-adds, repeated rows summed") {
  // Row 1 is used twice, rows 2 and 4 never: exact values by hand.
  const Var weight(Tensor::zeros({5, 2}), true);
  const Var indices(Tensor::from_vector({3}, {1, 3, 1}), true);
  const Var y = ops::embedding(weight, indices);
  y.backward(Tensor::from_vector({3, 2}, {1, 2, 3, 4, 5, 6}));
  CHECK(weight.grad().to_vector() == std::vector<float>{0, 0, 6, 8, 0, 0, 3, 4, 0, 0});
  CHECK_FALSE(indices.has_grad());  // indices are not differentiable
}

TEST_CASE("embedding: an index that is not an integer row is a user error naming it and V") {
  const Var weight(Tensor::zeros({4, 2}));
  const std::string fractional = error_of([&] {
    ops::embedding(weight, Var(Tensor::from_vector({2}, {1, 1.5f})));
  });
  CHECK(fractional.find("1.5") != std::string::npos);
  CHECK(fractional.find('4') != std::string::npos);
  const std::string too_big =
      error_of([&] { ops::embedding(weight, Var(Tensor::from_vector({1}, {7}))); });
  CHECK(too_big.find('7') != std::string::npos);
  CHECK(too_big.find("V = 4") != std::string::npos);
  CHECK_THROWS_AS(ops::embedding(weight, Var(Tensor::from_vector({1}, {-1}))), Error);
  CHECK_THROWS_AS(ops::embedding(weight, Var(Tensor::from_vector({1}, {4}))), Error);
}
