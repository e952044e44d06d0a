// The sparsity patterns bench/sparsenas_bench.cpp restores before SparseNAS' passes
// (bench/sparse_pattern.h): with --active-per-edge K every row of A (one edge's candidate
// ops) has exactly K non-zero entries, so the weight step runs K ops per edge; the patterns
// for growing K are nested; and restoring after a step has moved A gives the same pattern
// and values again.
#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/sparsenas.h"
#include "bench/sparse_pattern.h"
#include "engine/error.h"
#include "engine/sched/plan.h"
#include "tests/support/tiny_search.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {

// Non-zero entries of each row of every architecture group, in group order.
std::vector<int64_t> nonzeros_per_row(const algorithms::ArchState& arch) {
  std::vector<int64_t> counts;
  for (const Var& a : arch.logits) {
    const std::vector<float> v = a.value().to_vector();
    const int64_t rows = a.shape()[0], cols = a.shape()[1];
    for (int64_t r = 0; r < rows; ++r)
      counts.push_back(std::count_if(v.begin() + r * cols, v.begin() + (r + 1) * cols,
                                     [](float x) { return x != 0.0f; }));
  }
  return counts;
}

std::vector<std::vector<float>> values_of(const algorithms::ArchState& arch) {
  std::vector<std::vector<float>> out;
  for (const Var& a : arch.logits) out.push_back(a.value().to_vector());
  return out;
}

}  // namespace

TEST_CASE("sparse pattern: --active-per-edge K puts exactly K non-zeros in every row of A") {
  testing::TinySearch s("sparsenas", testing::tiny_space_without_none());
  const int64_t cols = s.arch.logits[0].shape()[1];
  REQUIRE(cols > 2);
  for (int64_t k = 1; k <= cols; ++k) {
    CAPTURE(k);
    const bench::SparsePattern pattern{.active_per_edge = k};
    bench::apply_sparse_pattern(s.arch, pattern);
    const std::vector<int64_t> counts = nonzeros_per_row(s.arch);
    REQUIRE(!counts.empty());
    for (int64_t c : counts) CHECK(c == k);
    const algorithms::SparseNasState& state = algorithms::sparsenas_state(s.arch);
    CHECK(state.x == values_of(s.arch));  // the prox starts from the pattern
    for (const std::vector<float>& v : state.v)
      CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; }));
    // The weight step's active set: K of every edge's candidates.
    const sched::ActiveSet active =
        algorithms::nonzero_active_set(s.graph, s.arch, sched::kInactive);
    const int64_t on = std::count(active.begin(), active.end(), sched::kActive);
    CHECK(on * cols == int64_t(s.graph.candidates.size()) * k);
  }
}

TEST_CASE("sparse pattern: a step moves A, restoring gives the same K-per-row pattern back") {
  testing::TinySearch s("sparsenas", testing::tiny_space_without_none());
  const bench::SparsePattern pattern{.active_per_edge = 2, .seed = 11};
  bench::apply_sparse_pattern(s.arch, pattern);
  const std::vector<std::vector<float>> restored = values_of(s.arch);
  s.arch.active = algorithms::nonzero_active_set(s.graph, s.arch, sched::kInactive);
  algorithms::StepContext ctx = s.context();
  for (const algorithms::NamedPass& pass : algorithms::find_algorithm("sparsenas").passes())
    pass.run(ctx);
  CHECK(values_of(s.arch) != restored);  // the proximal step moved A
  bench::apply_sparse_pattern(s.arch, pattern);
  CHECK(values_of(s.arch) == restored);
  for (int64_t c : nonzeros_per_row(s.arch)) CHECK(c == 2);

  // Another seed picks other entries (the tiny rows have room for a different choice).
  bench::apply_sparse_pattern(s.arch, bench::SparsePattern{.active_per_edge = 2, .seed = 12});
  CHECK(values_of(s.arch) != restored);
}

TEST_CASE("sparse pattern: the patterns of one seed are nested, K + 1 keeps K's entries") {
  testing::TinySearch s("sparsenas", testing::tiny_space_without_none());
  const int64_t cols = s.arch.logits[0].shape()[1];
  std::vector<std::vector<float>> previous;
  for (int64_t k = 1; k <= cols; ++k) {
    CAPTURE(k);
    bench::apply_sparse_pattern(s.arch, bench::SparsePattern{.active_per_edge = k});
    const std::vector<std::vector<float>> now = values_of(s.arch);
    for (size_t g = 0; g < previous.size(); ++g)
      for (size_t i = 0; i < now[g].size(); ++i)
        if (previous[g][i] != 0.0f) CHECK(now[g][i] == previous[g][i]);
    previous = now;
  }
}

TEST_CASE("sparse pattern: more active ops per edge than an edge has is refused") {
  testing::TinySearch s("sparsenas", testing::tiny_space_without_none());
  const int64_t cols = s.arch.logits[0].shape()[1];
  const bench::SparsePattern too_many{.active_per_edge = cols + 1};
  CHECK_THROWS_WITH_AS(bench::apply_sparse_pattern(s.arch, too_many),
                       doctest::Contains("candidate ops per edge"), Error);
  CHECK_THROWS_AS(bench::apply_sparse_pattern(s.arch, bench::SparsePattern{.active_per_edge = -1}),
                  Error);
}

TEST_CASE("sparse pattern: --density keeps its share of all entries non-zero") {
  testing::TinySearch s("sparsenas", testing::tiny_space_without_none());
  bench::apply_sparse_pattern(s.arch, bench::SparsePattern{.density = 0.5});
  for (const std::vector<float>& v : values_of(s.arch)) {
    const int64_t nonzero = std::count_if(v.begin(), v.end(), [](float x) { return x != 0.0f; });
    CHECK(nonzero == (int64_t(v.size()) + 1) / 2);  // half of the group's entries, rounded up
  }
}
