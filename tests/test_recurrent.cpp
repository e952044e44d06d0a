// Recurrent-cell ops: highway, y = s + sigmoid(c) (fh - s). The op cases
// (tests/support/op_harness.h: every backend against the CPU, the CPU's gradients against
// finite differences) and the forward against values worked by hand.
//
// Tolerances: gradcheck defaults (eps 1e-2, atol 1e-3, rtol 1e-2). highway is linear in s
// and fh and smooth in c (sigmoid's third derivative is below 1/8), so the central
// difference's truncation error is ~eps^2/6 * 1/8 * |fh - s| < 1e-5, and float32 rounding of
// L adds ~1e-7 |L| / eps ~ 1e-5 for these sizes.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "ops/ops.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::GradCheck;
using testing::random;
using testing::spec_of;

std::vector<testing::OpCase> recurrent_cases() {
  GradCheck only_gate =
      spec_of(OpKind::highway, {random({3, 4}, 4), random({3, 4}, 5, -3, 3), random({3, 4}, 6)});
  only_gate.check = {1};
  return {
      {"[N, H], all three inputs",
       spec_of(OpKind::highway, {random({4, 5}, 1), random({4, 5}, 2, -3, 3), random({4, 5}, 3)})},
      {"gate only", only_gate},
      {"3-d", spec_of(OpKind::highway,
                      {random({2, 3, 4}, 7), random({2, 3, 4}, 8, -2, 2), random({2, 3, 4}, 9)})},
  };
}
}  // namespace

CELLGRAPH_OP_CASES("recurrent", recurrent_cases)

TEST_CASE("highway: forward is s + sigmoid(c) (fh - s), element by element") {
  // sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
  const float l3 = std::log(3.0f);
  const Var s(Tensor::from_vector({2, 2}, {1, 2, -4, 0}));
  const Var c(Tensor::from_vector({2, 2}, {0, l3, -l3, 0}));
  const Var fh(Tensor::from_vector({2, 2}, {3, 6, 4, -2}));
  const std::vector<float> y = ops::highway(s, c, fh).value().to_vector();
  const std::vector<double> want{1 + 0.5 * 2, 2 + 0.75 * 4, -4 + 0.25 * 8, 0 + 0.5 * -2};
  testing::check_close("highway", y, want, 1e-6);
}

TEST_CASE("highway: mismatched shapes are refused naming the op") {
  const Var a(Tensor::zeros({2, 3})), b(Tensor::zeros({2, 4}));
  CHECK_THROWS_WITH_AS(ops::highway(a, a, b), doctest::Contains("highway"), Error);
}
