// softmax, log_softmax and cross_entropy: the op cases (tests/support/op_harness.h: every
// backend against the CPU, the CPU's gradients against finite differences), and on the CPU
// against double-precision references.
//
// Tolerances: gradcheck defaults (eps 1e-2, atol 1e-3, rtol 1e-2). Logits lie in [-2, 2],
// where the third derivatives of softmax / log-softmax / the loss are O(1), so the
// central-difference truncation error is ~eps^2 = 1e-4; float32 rounding of L adds ~1e-5.
// Forward values: relative 1e-5 (float32 exp/log over a handful of classes).
#include <cmath>
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
using testing::spec_of;
// Logits in [-2, 2).
Tensor random(const Shape& shape, uint64_t seed) {
  return testing::random(shape, seed, -2.0f, 2.0f);
}

// log softmax of each row of a row-major [rows, classes] buffer, in double.
std::vector<double> reference_log_softmax(const std::vector<float>& x, int64_t classes) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / size_t(classes); ++r) {
    const float* row = x.data() + r * size_t(classes);
    double peak = row[0], z = 0;
    for (int64_t c = 0; c < classes; ++c) peak = std::max(peak, double(row[c]));
    for (int64_t c = 0; c < classes; ++c) z += std::exp(double(row[c]) - peak);
    for (int64_t c = 0; c < classes; ++c)
      out[r * size_t(classes) + size_t(c)] = double(row[c]) - peak - std::log(z);
  }
  return out;
}

double reference_cross_entropy(const std::vector<float>& x, const std::vector<float>& labels,
                               int64_t classes, double eps) {
  const std::vector<double> lp = reference_log_softmax(x, classes);
  double total = 0;
  for (size_t r = 0; r < labels.size(); ++r) {
    double mean = 0;
    for (int64_t c = 0; c < classes; ++c) mean += lp[r * size_t(classes) + size_t(c)];
    mean /= double(classes);
    total -= (1 - eps) * lp[r * size_t(classes) + size_t(labels[r])] + eps * mean;
  }
  return total / double(labels.size());
}

std::vector<testing::OpCase> softmax_cases() {
  const Tensor labels = Tensor::from_vector({4}, {2, 0, 4, 2});
  return {
      {"3 x 6", spec_of(OpKind::softmax, {random({3, 6}, 2)})},
      {"3 x 6", spec_of(OpKind::log_softmax, {random({3, 6}, 4)})},
      // The logits' gradient (labels are not differentiable), with and without smoothing.
      {"no smoothing",
       spec_of(OpKind::cross_entropy, {random({4, 5}, 6), labels}, CrossEntropyAttrs{0.0f})},
      {"smoothing 0.2",
       spec_of(OpKind::cross_entropy, {random({4, 5}, 7), labels}, CrossEntropyAttrs{0.2f})},
  };
}
}  // namespace

CELLGRAPH_OP_CASES("softmax", softmax_cases)

TEST_CASE("softmax: rows are normalised exponentials") {
  const Tensor x = random({4, 5}, 1);
  const std::vector<double> ref = reference_log_softmax(x.to_vector(), 5);
  const std::vector<float> out = ops::softmax(Var(x)).value().to_vector();
  for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == doctest::Approx(std::exp(ref[i])));
  const std::vector<float> big =
      ops::softmax(Var(Tensor::from_vector({1, 3}, {1000, 1000, 999}))).value().to_vector();
  CHECK(big[0] == doctest::Approx(big[1]));  // no overflow for large logits
  CHECK(big[0] + big[1] + big[2] == doctest::Approx(1.0));
}

TEST_CASE("log_softmax: forward matches the double reference") {
  const Tensor x = random({3, 7}, 3);
  const std::vector<double> ref = reference_log_softmax(x.to_vector(), 7);
  const std::vector<float> out = ops::log_softmax(Var(x)).value().to_vector();
  for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == doctest::Approx(ref[i]).epsilon(1e-5));
}

TEST_CASE("cross_entropy: mean negative log-likelihood, with and without smoothing") {
  const Tensor x = random({5, 4}, 5);
  const Tensor labels = Tensor::from_vector({5}, {0, 3, 1, 1, 2});
  for (const float eps : {0.0f, 0.1f}) {
    CAPTURE(eps);
    const float loss = ops::cross_entropy(Var(x), Var(labels), eps).value().item();
    CHECK(loss == doctest::Approx(
                      reference_cross_entropy(x.to_vector(), labels.to_vector(), 4, double(eps)))
                      .epsilon(1e-5));
  }
  // Uniform logits: every class has p = 1/C, so the loss is log C whatever the labels.
  const float flat =
      ops::cross_entropy(Var(Tensor::zeros({2, 8})), Var(Tensor::from_vector({2}, {3, 5})))
          .value()
          .item();
  CHECK(flat == doctest::Approx(std::log(8.0)));
}

TEST_CASE("cross_entropy: backward is (p - onehot) g / N and labels get no gradient") {
  const Tensor x = random({2, 3}, 8);
  const Var logits(x, true), labels(Tensor::from_vector({2}, {1, 0}), true);
  ops::cross_entropy(logits, labels).backward(Tensor::from_vector({1}, {3.0f}));
  const std::vector<double> lp = reference_log_softmax(x.to_vector(), 3);
  const std::vector<float> g = logits.grad().to_vector();
  const int label_of_row[2] = {1, 0};
  for (size_t i = 0; i < g.size(); ++i) {
    const double target = int(i % 3) == label_of_row[i / 3] ? 1.0 : 0.0;
    CHECK(g[i] == doctest::Approx((std::exp(lp[i]) - target) * 3.0 / 2.0).epsilon(1e-5));
  }
  CHECK_FALSE(labels.has_grad());
}

TEST_CASE("cross_entropy: a label that is not a class id is a user error naming row and value") {
  const Var logits(Tensor::zeros({3, 4}));
  const std::string out_of_range = error_of([&] {
    ops::cross_entropy(logits, Var(Tensor::from_vector({3}, {0, 1, 4})));
  });
  CHECK(out_of_range.find("row 2") != std::string::npos);
  CHECK(out_of_range.find('4') != std::string::npos);
  const std::string fractional = error_of([&] {
    ops::cross_entropy(logits, Var(Tensor::from_vector({3}, {0, 2.5f, 1})));
  });
  CHECK(fractional.find("row 1") != std::string::npos);
  CHECK(fractional.find("2.5") != std::string::npos);
  CHECK_THROWS_AS(ops::cross_entropy(logits, Var(Tensor::from_vector({3}, {-1, 0, 0}))), Error);
  CHECK_THROWS_AS(ops::cross_entropy(logits, Var(Tensor::from_vector({2}, {0, 0}))), Error);
}
