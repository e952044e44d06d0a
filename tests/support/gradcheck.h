// Finite-difference gradient check for one op: step 1 of the op harness (op_harness.h).
// The check compares the autodiff gradient of L = sum_o <out_o, R_o> (R_o fixed random
// weights) against central differences (L(x + eps) - L(x - eps)) / 2 eps, element by
// element, for every checked input: |analytic - numeric| <= atol + rtol * |numeric|.
#pragma once

#include <string>
#include <vector>

#include "engine/tensor/tensor.h"
#include "ops/attrs.h"
#include "ops/op_list.h"

namespace cellgraph::testing {

struct GradCheck {
  OpKind kind{};
  Attrs attrs = NoAttrs{};
  std::vector<Tensor> inputs;  // undefined = absent optional input
  std::vector<int> check;      // inputs to check; empty = every defined differentiable input
  float eps = 1e-2f;
  float atol = 1e-3f;
  float rtol = 1e-2f;
  uint64_t seed = 7;  // for the weights R_o
};

struct GradCheckResult {
  bool ok = true;
  std::string report;  // first mismatches, "input 1 [17]: analytic 0.31 numeric 0.29"
  double max_abs_error = 0;
  int checked = 0;  // elements compared
};

GradCheckResult run_gradcheck(const GradCheck& spec);

// spec.check, or when it is empty every defined input the op's schema differentiates.
std::vector<int> checked_inputs(const GradCheck& spec);

}  // namespace cellgraph::testing

// Asserts inside a doctest case and prints the report on failure.
#define CHECK_GRADIENTS(spec)                                          \
  do {                                                                 \
    const auto cg_result_ = ::cellgraph::testing::run_gradcheck(spec); \
    INFO(cg_result_.report);                                           \
    CHECK(cg_result_.checked > 0);                                     \
    CHECK(cg_result_.ok);                                              \
  } while (0)
