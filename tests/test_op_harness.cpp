// The cross-backend op harness (tests/support/op_harness.h): every op of ops/op_list.h has
// a case, and the harness's own parts (agreement, skips, what a run brings back) do what
// the family tests rely on.
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

TEST_CASE("op harness: every op in ops/op_list.h has at least one op case") {
  std::array<int, kOpCount> cases{};
  int families = 0;
  for (const testing::OpFamily& family : testing::op_families()) {
    ++families;
    for (const testing::OpCase& c : family.cases()) ++cases[size_t(c.op.kind)];
  }
  CHECK(families >= 8);
  for (int k = 0; k < kOpCount; ++k)
    CHECK_MESSAGE(cases[size_t(k)] > 0, "op '", std::string(op_name(static_cast<OpKind>(k))),
                  "' has no op case: add one to its family's list in tests/test_<family>.cpp "
                  "(CELLGRAPH_OP_CASES, tests/support/op_harness.h)");
}

TEST_CASE("op harness: agreement allows the tolerance and flags more, NaN and other shapes") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor want = Tensor::from_vector({4}, {1, -2, 1000, inf});
  // Within 1e-4 * (1 + |want|): 1.5e-4 at 1, 0.05 at 1000; equal infinities agree.
  const auto close =
      testing::agree("y", Tensor::from_vector({4}, {1.00015f, -2, 1000.05f, inf}), want, 1e-4);
  CHECK(close.compared == 4);
  CHECK(close.mismatched == 0);
  const auto off =
      testing::agree("y", Tensor::from_vector({4}, {1.001f, -2, 1000, -inf}), want, 1e-4);
  CHECK(off.mismatched == 2);
  CHECK(off.report.find("y [0]") != std::string::npos);
  CHECK(off.report.find("y [3]") != std::string::npos);
  const Tensor with_nan = Tensor::from_vector({2}, {nan, 1});
  CHECK(testing::agree("y", with_nan, with_nan, 1e-4).mismatched == 1);
  CHECK(testing::agree("y", Tensor::zeros({2, 2}), Tensor::zeros({4}), 1e-4).mismatched == 1);
}

TEST_CASE("op harness: a backend that cannot run an op is skipped with the reason") {
  CHECK(testing::skip_reason(Device::cpu, OpKind::conv2d).empty());
  if (!backend_available(Device::cuda)) {
    // Built without CUDA, or no device at run time: the backend's own error says which.
    std::string why;
    try {
      backend_for(Device::cuda);
    } catch (const Error& e) {
      why = e.what();
    }
    CHECK(!why.empty());
    CHECK(testing::skip_reason(Device::cuda, OpKind::conv2d) == why);
    return;
  }
  for (int k = 0; k < kOpCount; ++k) {
    const auto kind = static_cast<OpKind>(k);
    const std::string why = testing::skip_reason(Device::cuda, kind);
    if (backend_for(Device::cuda).supports(kind))
      CHECK(why.empty());
    else
      CHECK(why == "the cuda backend has no kernel for op '" + std::string(op_name(kind)) + "'");
  }
}

TEST_CASE("op harness: a run brings back outputs, inputs updated in place and wanted gradients") {
  // Training batch norm: the running statistics (inputs 3 and 4) change in place.
  BatchNormAttrs attrs;
  attrs.training = true;
  const testing::OpCase c(
      "training",
      testing::spec_of(OpKind::batch_norm,
                       {testing::random({4, 2, 3, 3}, 1), testing::random({2}, 2),
                        testing::random({2}, 3), Tensor::zeros({2}), Tensor::full({2}, 1.0f)},
                       attrs));
  const testing::OpRun all = testing::run_op_case(Device::cpu, c, {0, 1, 2});
  REQUIRE(all.outputs.size() == 1);
  CHECK(all.outputs[0].shape() == Shape{4, 2, 3, 3});
  CHECK(all.inputs[3].to_vector() != std::vector<float>{0, 0});
  CHECK(c.op.inputs[3].to_vector() == std::vector<float>{0, 0});  // the case is untouched
  for (int i : {0, 1, 2}) CHECK(all.grads[size_t(i)].defined());
  CHECK_FALSE(all.grads[3].defined());
  const testing::OpRun gamma_only = testing::run_op_case(Device::cpu, c, {1});
  CHECK_FALSE(gamma_only.grads[0].defined());
  CHECK(gamma_only.grads[1].defined());
  CHECK_FALSE(gamma_only.grads[2].defined());
}

TEST_CASE("op harness: the comparison with the CPU names every tensor that disagrees") {
  const testing::OpCase c(
      "3x3", testing::spec_of(OpKind::conv2d,
                              {testing::random({1, 2, 5, 5}, 1), testing::random({3, 2, 3, 3}, 2),
                               testing::random({3}, 3)},
                              ConvAttrs{1, 1, 1, 1}));
  const testing::OpRun cpu = testing::run_op_case(Device::cpu, c, {0, 1, 2});
  // The path a GPU takes, run on the CPU: it agrees with itself, the single-gradient runs
  // included.
  const std::vector<std::string> none = testing::compare_with_cpu(Device::cpu, c, cpu);
  CHECK(none.empty());

  // Against a run of other inputs: the output and every gradient differ.
  testing::OpCase other = c;
  other.op.inputs[0] = testing::random({1, 2, 5, 5}, 4);
  const std::vector<std::string> problems = testing::compare_with_cpu(
      Device::cpu, c, testing::run_op_case(Device::cpu, other, {0, 1, 2}));
  const auto mentions = [&](const std::string& part) {
    for (const std::string& p : problems)
      if (p.find(part) != std::string::npos) return true;
    return false;
  };
  CHECK(mentions("conv2d '3x3' on cpu: output 0: "));
  CHECK(mentions("input 0 after the run"));
  CHECK(mentions("input 1's gradient"));        // dw reads x
  CHECK_FALSE(mentions("input 0's gradient"));  // dx does not
  // A reference without a gradient where the run has one.
  testing::OpRun no_bias_grad = cpu;
  no_bias_grad.grads[2] = Tensor();
  const std::vector<std::string> missing = testing::compare_with_cpu(Device::cpu, c, no_bias_grad);
  REQUIRE(missing.size() == 1);
  CHECK(missing[0] == "conv2d '3x3' on cpu: input 2 got a gradient, the CPU none");
}
