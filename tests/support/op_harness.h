// The cross-backend op harness. An op case is one op with its attributes and inputs (a
// GradCheck: which inputs to check, the finite-difference step and tolerances). For every
// case the harness
//   1. checks the CPU gradients against central differences (gradcheck.h);
//   2. runs the op forward and backward on every backend built into this binary, the CPU
//      included, and compares outputs, inputs updated in place (batch norm's running
//      statistics) and gradients with a CPU run, within the case's backend tolerance;
//   3. on each backend, runs the backward once per checked input with only that gradient
//      wanted: it must match and no other input may get one (kernel.h: an undefined
//      gradient slot is not computed).
// A backend that is not built, has no device at run time, or has no kernel for the op is
// skipped with a doctest MESSAGE saying why. On a CPU-only machine step 2 compares the
// CPU with a second CPU run through the same path a GPU takes, copies included.
//
// Each op family's test file (tests/test_<family>.cpp) lists its cases once:
//   std::vector<testing::OpCase> conv_cases() { return {...}; }
//   CELLGRAPH_OP_CASES("conv", conv_cases)
// which registers the list and adds one test case that runs it. test_op_harness.cpp fails
// naming every op of ops/op_list.h that no family lists, so no op goes untested.
// The design follows ggml's tests/test-backend-ops.cpp: cases as data, every backend
// against the CPU, skips named, coverage of the op list checked.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "engine/tensor/tensor.h"
#include "tests/support/gradcheck.h"

namespace cellgraph::testing {

// Another backend agrees with the CPU when, element by element, |got - want| <= tolerance *
// (1 + |want|). 1e-4: a float32 kernel on another device sums in another order; over the
// sums of at most a few hundred terms of size ~1 in these cases that moves results by
// ~1e-5 at most, while an indexing or formula error moves them by 1e-2 and more. A case
// with longer sums, or a backend that computes in lower precision (TF32), states its own.
inline constexpr double kBackendTolerance = 1e-4;

struct OpCase {
  OpCase(std::string case_name, GradCheck case_op, double tolerance = kBackendTolerance)
      : name(std::move(case_name)), op(std::move(case_op)), backend_tolerance(tolerance) {}
  std::string name;  // what the case covers, shown with its op on failure
  GradCheck op;      // inputs live on the CPU; the harness copies them per run
  double backend_tolerance;
};

using OpCaseList = std::vector<OpCase> (*)();

struct OpFamily {
  std::string name;
  OpCaseList cases;
};

// Every registered family (CELLGRAPH_OP_CASES), in registration order.
const std::vector<OpFamily>& op_families();
// noexcept: it runs during static initialisation, where an exception (only bad_alloc can
// arise) would end the program anyway.
bool add_op_family(const char* name, OpCaseList cases) noexcept;

// Runs steps 1-3 above for every case, on every backend.
void run_op_cases(const std::vector<OpCase>& cases);

// Why `device` cannot run `kind` in this process ("" when it can): the backend's own
// error when it is not built or has no device, or that it has no kernel for the op.
std::string skip_reason(Device device, OpKind kind);

// What one run of a case on a backend produced, copied back to the CPU.
struct OpRun {
  std::vector<Tensor> outputs;
  std::vector<Tensor> inputs;  // the inputs after the run (in-place updates)
  std::vector<Tensor> grads;   // per input; undefined where no gradient arrived
};

// Forward, then backward with the gradcheck's seeded output weights, on `device`, with a
// gradient wanted for exactly the inputs in `wanted`.
OpRun run_op_case(Device device, const OpCase& c, const std::vector<int>& wanted);

// Steps 2 and 3 on one backend, against a CPU run of the same case: every disagreement,
// one entry each naming the op, case, backend and tensor (none when all agree).
std::vector<std::string> compare_with_cpu(Device device, const OpCase& c, const OpRun& cpu);

// Element-wise agreement of two tensors of one shape: equal (infinities included) or
// within `tolerance` as above; a NaN on either side disagrees. The report names `what`
// and the first five mismatches.
struct Agreement {
  int64_t compared = 0;
  int64_t mismatched = 0;
  std::string report;
};
Agreement agree(const std::string& what, const Tensor& got, const Tensor& want, double tolerance);

}  // namespace cellgraph::testing

#define CELLGRAPH_OP_CASES_CAT2(a, b) a##b
#define CELLGRAPH_OP_CASES_CAT(a, b) CELLGRAPH_OP_CASES_CAT2(a, b)
// Registers `make_cases` as family `family` (a string literal) and adds its test case.
#define CELLGRAPH_OP_CASES(family, make_cases)                                         \
  [[maybe_unused]] static const bool CELLGRAPH_OP_CASES_CAT(cg_op_family_, __LINE__) = \
      ::cellgraph::testing::add_op_family(family, make_cases);                         \
  TEST_CASE(family                                                                     \
            " op cases: every backend against the CPU, the CPU against finite "        \
            "differences") {                                                           \
    ::cellgraph::testing::run_op_cases(make_cases());                                  \
  }
