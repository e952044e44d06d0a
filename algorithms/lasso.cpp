#include "algorithms/lasso.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace cellgraph::algorithms {

namespace {
// r = A z - b
std::vector<double> residual(const std::vector<double>& a, int64_t m, int64_t n,
                             const std::vector<double>& b, const std::vector<double>& z) {
  std::vector<double> r(size_t(m), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    double s = -b[size_t(i)];
    for (int64_t j = 0; j < n; ++j) s += a[size_t(i * n + j)] * z[size_t(j)];
    r[size_t(i)] = s;
  }
  return r;
}

// g = A^T r
std::vector<double> transpose_times(const std::vector<double>& a, int64_t m, int64_t n,
                                    const std::vector<double>& r) {
  std::vector<double> g(size_t(n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) g[size_t(j)] += a[size_t(i * n + j)] * r[size_t(i)];
  return g;
}

double soft_threshold(double x, double t) {
  if (x > t) return x - t;
  if (x < -t) return x + t;
  return 0.0;
}
}  // namespace

double lipschitz_constant(const std::vector<double>& a, int64_t m, int64_t n) {
  CG_ASSERT(int64_t(a.size()) == m * n, "A has ", a.size(), " entries, not ", m, " x ", n);
  // Power iteration on A^T A from a fixed, non-degenerate start.
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) v[size_t(j)] = 1.0 + 0.01 * double(j % 7);
  double eigen = 0;
  for (int it = 0; it < 500; ++it) {
    const std::vector<double> zero_b(size_t(m), 0.0);
    std::vector<double> w = transpose_times(a, m, n, residual(a, m, n, zero_b, v));
    double norm = 0;
    for (double x : w) norm += x * x;
    norm = std::sqrt(norm);
    if (norm == 0) return 0;
    double vnorm = 0;
    for (double x : v) vnorm += x * x;
    const double next = norm / std::sqrt(vnorm);
    for (size_t j = 0; j < w.size(); ++j) v[j] = w[j] / norm;
    if (std::abs(next - eigen) <= 1e-12 * next) return next;
    eigen = next;
  }
  return eigen;
}

double lasso_objective(const std::vector<double>& a, int64_t m, int64_t n,
                       const std::vector<double>& b, double lambda, const std::vector<double>& z) {
  double f = 0;
  for (double r : residual(a, m, n, b, z)) f += 0.5 * r * r;
  for (double x : z) f += lambda * std::abs(x);
  return f;
}

LassoResult solve_lasso(const std::vector<double>& a, int64_t m, int64_t n,
                        const std::vector<double>& b, const LassoOptions& options,
                        const std::vector<double>& warm_start) {
  CG_ASSERT(int64_t(a.size()) == m * n && int64_t(b.size()) == m, "LASSO sizes disagree");
  CG_ASSERT(warm_start.empty() || int64_t(warm_start.size()) == n, "warm start of wrong size");
  if (!(options.lambda >= 0)) throw error("LASSO: lambda must be >= 0, got ", options.lambda);
  if (!(options.tolerance >= 0))
    throw error("LASSO: tolerance must be >= 0, got ", options.tolerance);
  if (options.max_iterations < 1)
    throw error("LASSO: the iteration cap must be >= 1, got ", options.max_iterations);
  LassoResult out;
  out.z = warm_start.empty() ? std::vector<double>(size_t(n), 0.0) : warm_start;
  const double lipschitz = lipschitz_constant(a, m, n);
  if (lipschitz == 0) {  // A = 0: the l1 term alone, minimised at 0
    std::fill(out.z.begin(), out.z.end(), 0.0);
    out.converged = true;
    return out;
  }
  const double step = 1.0 / lipschitz, threshold = options.lambda * step;
  std::vector<double> y = out.z;  // FISTA's extrapolated point (ISTA: y = z)
  double t = 1.0;
  for (out.iterations = 1; out.iterations <= options.max_iterations; ++out.iterations) {
    const std::vector<double> g = transpose_times(a, m, n, residual(a, m, n, b, y));
    std::vector<double> next(static_cast<size_t>(n));
    double moved = 0;
    for (size_t j = 0; j < next.size(); ++j) {
      next[j] = soft_threshold(y[j] - step * g[j], threshold);
      moved = std::max(moved, std::abs(next[j] - out.z[j]));
    }
    if (options.fista) {
      const double t_next = 0.5 * (1.0 + std::sqrt(1.0 + 4.0 * t * t));
      for (size_t j = 0; j < y.size(); ++j)
        y[j] = next[j] + (t - 1.0) / t_next * (next[j] - out.z[j]);
      t = t_next;
    } else {
      y = next;
    }
    out.z = std::move(next);
    if (moved <= options.tolerance) {
      out.converged = true;
      return out;
    }
  }
  out.iterations = options.max_iterations;
  return out;
}

}  // namespace cellgraph::algorithms
