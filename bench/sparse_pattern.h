// The fixed sparsity patterns bench/sparsenas_bench.cpp gives SparseNAS' A before its passes,
// kept apart from the bench so that a test (tests/test_sparse_pattern.cpp) can check them:
// either a seeded fraction of all entries non-zero (--density: what a search looks like once
// lambda has pruned A), or exactly K non-zero entries in every row, i.e. K active candidate
// ops on every edge (--active-per-edge: the step-time scaling of bench/run_scaling, where a
// density would leave some edges with none and others with several, so K would be only an
// average). Values have either sign with |A| in [0.05, 0.3]; x gets the same values and the
// momentum is zeroed, so the proximal step starts from the pattern too.
#pragma once

#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/sparsenas.h"
#include "engine/error.h"
#include "engine/tensor/random.h"

namespace cellgraph::bench {

struct SparsePattern {
  double density = 0.25;        // share of all entries non-zero, when active_per_edge is 0
  int64_t active_per_edge = 0;  // > 0: exactly this many non-zero entries in every row of A
  uint64_t seed = 7;            // the same seed gives the same pattern and values every time
};

namespace detail {
inline void shuffle(std::vector<size_t>& order, Rng& rng) {
  for (size_t i = order.size(); i-- > 1;) std::swap(order[i], order[size_t(rng.below(i + 1))]);
}
inline float signed_magnitude(Rng& rng) {
  const float magnitude = 0.05f + 0.25f * rng.uniform();
  return rng.uniform() < 0.5f ? -magnitude : magnitude;
}
}  // namespace detail

// Sets A (and SparseNAS' x and momentum) to the pattern. Throws when active_per_edge exceeds
// the candidates of an edge or is negative.
inline void apply_sparse_pattern(algorithms::ArchState& arch, const SparsePattern& pattern) {
  if (pattern.active_per_edge < 0)
    throw error("--active-per-edge: expected a positive count, got ", pattern.active_per_edge);
  Rng rng(pattern.seed);
  algorithms::SparseNasState& state = algorithms::sparsenas_state(arch);
  for (size_t g = 0; g < arch.logits.size(); ++g) {
    const Shape& shape = arch.logits[g].shape();  // [edges, candidates per edge]
    const size_t n = size_t(shape.numel());
    std::vector<float> a(n, 0.0f);
    if (pattern.active_per_edge == 0) {
      std::vector<size_t> order(n);
      std::iota(order.begin(), order.end(), size_t{0});
      detail::shuffle(order, rng);
      const size_t keep = size_t(std::lround(double(n) * pattern.density));
      for (size_t i = 0; i < keep; ++i) a[order[i]] = detail::signed_magnitude(rng);
    } else {
      const size_t rows = size_t(shape[0]), cols = size_t(shape[1]);
      if (size_t(pattern.active_per_edge) > cols)
        throw error("--active-per-edge ", pattern.active_per_edge, ": architecture group ", g,
                    " has only ", cols, " candidate ops per edge");
      // Every row draws its whole order and a value for each entry whatever K is, so the
      // patterns of one seed are nested: K + 1 keeps K's entries (and values) and adds one.
      // A sweep over K then adds ops to the same edges instead of drawing a new mix each time.
      for (size_t r = 0; r < rows; ++r) {
        std::vector<size_t> order(cols);
        std::iota(order.begin(), order.end(), size_t{0});
        detail::shuffle(order, rng);
        for (size_t i = 0; i < cols; ++i) {
          const float value = detail::signed_magnitude(rng);
          if (i < size_t(pattern.active_per_edge)) a[r * cols + order[i]] = value;
        }
      }
    }
    arch.logits[g].value().copy_from(Tensor::from_vector(arch.logits[g].shape(), a));
    state.x[g] = a;
    std::fill(state.v[g].begin(), state.v[g].end(), 0.0f);
  }
}

}  // namespace cellgraph::bench
