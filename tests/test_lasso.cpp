// ISTA and FISTA against the LASSO optimality conditions on problems with a known answer.
#include <cmath>

#include <doctest/doctest.h>

#include "algorithms/lasso.h"
#include "engine/error.h"
#include "engine/tensor/random.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {
struct Problem {
  int64_t m = 0, n = 0;
  std::vector<double> a, z0, b;
};

// Gaussian A (m < n, well conditioned on small supports) and b = A z0 for an s-sparse z0
// whose nonzeros are at least 1 in magnitude.
Problem sparse_problem(int64_t m, int64_t n, const std::vector<int64_t>& support, uint64_t seed) {
  Problem p{m, n, {}, std::vector<double>(size_t(n), 0.0), std::vector<double>(size_t(m), 0.0)};
  Rng rng(seed);
  for (int64_t i = 0; i < m * n; ++i) p.a.push_back(double(rng.normal()) / std::sqrt(double(m)));
  for (int64_t j : support)
    p.z0[size_t(j)] = (rng.uniform() < 0.5 ? -1.0 : 1.0) * (1.0 + rng.uniform());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) p.b[size_t(i)] += p.a[size_t(i * n + j)] * p.z0[size_t(j)];
  return p;
}

// A^T (A z - b)
std::vector<double> gradient(const Problem& p, const std::vector<double>& z) {
  std::vector<double> r(size_t(p.m), 0.0), g(size_t(p.n), 0.0);
  for (int64_t i = 0; i < p.m; ++i) {
    r[size_t(i)] = -p.b[size_t(i)];
    for (int64_t j = 0; j < p.n; ++j) r[size_t(i)] += p.a[size_t(i * p.n + j)] * z[size_t(j)];
  }
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) g[size_t(j)] += p.a[size_t(i * p.n + j)] * r[size_t(i)];
  return g;
}

void check_optimality(const Problem& p, const std::vector<double>& z, double lambda, double tol) {
  const std::vector<double> g = gradient(p, z);
  for (int64_t j = 0; j < p.n; ++j) {
    CAPTURE(j);
    if (z[size_t(j)] != 0.0)
      CHECK(std::abs(g[size_t(j)] + lambda * (z[size_t(j)] > 0 ? 1 : -1)) <= tol);
    else
      CHECK(std::abs(g[size_t(j)]) <= lambda + tol);
  }
}
}  // namespace

TEST_CASE("lasso: ISTA and FISTA recover the support of a sparse code and are LASSO-optimal") {
  const Problem p = sparse_problem(20, 40, {3, 17, 31}, 7);
  const double lambda = 1e-2;
  for (bool fista : {false, true}) {
    CAPTURE(fista);
    const LassoResult r = solve_lasso(
        p.a, p.m, p.n, p.b,
        LassoOptions{
            .lambda = lambda, .tolerance = 1e-12, .max_iterations = 200000, .fista = fista});
    REQUIRE(r.converged);
    for (int64_t j = 0; j < p.n; ++j) {
      CAPTURE(j);
      CHECK((std::abs(r.z[size_t(j)]) > 1e-6) == (p.z0[size_t(j)] != 0.0));
      if (p.z0[size_t(j)] != 0.0)
        CHECK(r.z[size_t(j)] == doctest::Approx(p.z0[size_t(j)]).epsilon(0.05));
    }
    check_optimality(p, r.z, lambda, 1e-6);
  }
}

TEST_CASE("lasso: FISTA reaches a given objective in fewer iterations than ISTA") {
  const Problem p = sparse_problem(30, 70, {0, 9, 44, 60}, 11);
  const double lambda = 1e-3;
  const LassoResult best =
      solve_lasso(p.a, p.m, p.n, p.b,
                  LassoOptions{.lambda = lambda, .tolerance = 1e-14, .max_iterations = 500000});
  const double target = lasso_objective(p.a, p.m, p.n, p.b, lambda, best.z) + 1e-6;
  auto iterations_to_target = [&](bool fista) {
    for (int k = 1; k <= 100000; k *= 2) {
      const LassoResult r = solve_lasso(
          p.a, p.m, p.n, p.b,
          LassoOptions{.lambda = lambda, .tolerance = 0, .max_iterations = k, .fista = fista});
      if (lasso_objective(p.a, p.m, p.n, p.b, lambda, r.z) <= target) return k;
    }
    return 1 << 30;
  };
  const int ista = iterations_to_target(false), fista = iterations_to_target(true);
  MESSAGE("iterations to within 1e-6 of the optimum: ISTA ", ista, ", FISTA ", fista);
  CHECK(fista < ista);
}

TEST_CASE("lasso: warm start, zero matrix and bad options") {
  const Problem p = sparse_problem(10, 20, {5}, 3);
  const LassoOptions o{.lambda = 1e-3, .tolerance = 1e-12, .max_iterations = 100000};
  const LassoResult cold = solve_lasso(p.a, p.m, p.n, p.b, o);
  const LassoResult warm = solve_lasso(p.a, p.m, p.n, p.b, o, cold.z);
  CHECK(warm.iterations < cold.iterations);  // already at the solution: one step
  const LassoResult zero =
      solve_lasso(std::vector<double>(200, 0.0), 10, 20, p.b, o, std::vector<double>(20, 1.0));
  for (double z : zero.z) CHECK(z == 0.0);
  CHECK(lipschitz_constant(std::vector<double>{3, 0, 0, 1}, 2, 2) == doctest::Approx(9.0));
  CHECK_THROWS_AS(solve_lasso(p.a, p.m, p.n, p.b, LassoOptions{.lambda = -1}), Error);
  CHECK_THROWS_AS(solve_lasso(p.a, p.m, p.n, p.b, LassoOptions{.max_iterations = 0}), Error);
}
