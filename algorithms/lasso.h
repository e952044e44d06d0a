// The LASSO problem of ISTA-NAS's sparse coding, solved natively:
//   z* = argmin_z  1/2 ||A z - b||^2 + lambda ||z||_1,   A: m x n (m < n), row-major.
// ISTA is proximal gradient descent with step 1/L, L the largest eigenvalue of A^T A;
// FISTA adds Nesterov momentum (Beck & Teboulle 2009) and converges as O(1/k^2) instead of
// O(1/k). Both stop when an iteration moves z by at most `tolerance` (max-norm) or after
// `max_iterations`.
//
// The solver stays on the host, in double, whatever device the run uses: each
// problem is one node's m x n system (m = 7, n a few dozen in DARTS' cells), solved once per
// step on a host copy of b_j (ista.cpp's node_code). A device would spend more on the
// launches and copies than the solve costs, and the double precision keeps the recovered
// supports stable; the backends' vector operations (engine/backends/vector_ops.h) serve the
// large float tensors instead.
#pragma once

#include <cstdint>
#include <vector>

namespace cellgraph::algorithms {

struct LassoOptions {
  double lambda = 1e-5;  // ISTA-NAS's default
  double tolerance = 1e-7;
  int max_iterations = 1000;
  bool fista = true;  // false: plain ISTA
};

struct LassoResult {
  std::vector<double> z;
  int iterations = 0;
  bool converged = false;  // stopped by the tolerance, not the cap
};

// `warm_start` (size n, or empty for zeros) is where the iteration begins: ISTA-NAS starts
// each step from the previous step's code.
LassoResult solve_lasso(const std::vector<double>& a, int64_t m, int64_t n,
                        const std::vector<double>& b, const LassoOptions& options,
                        const std::vector<double>& warm_start = {});

// 1/2 ||A z - b||^2 + lambda ||z||_1
double lasso_objective(const std::vector<double>& a, int64_t m, int64_t n,
                       const std::vector<double>& b, double lambda, const std::vector<double>& z);

// The largest eigenvalue of A^T A (the gradient's Lipschitz constant), by power iteration.
double lipschitz_constant(const std::vector<double>& a, int64_t m, int64_t n);

}  // namespace cellgraph::algorithms
