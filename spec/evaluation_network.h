// The DARTS evaluation network built from a fixed spec's cells: `cellgraph train --cells N
// --channels C` (DARTS CIFAR-10: 20 cells at C = 36; the search network: 8 at 16).
#pragma once

#include <cstdint>

#include "spec/space.h"

namespace cellgraph::spec {

// Returns `space` with its body replaced by N cells: the reduction cell at indices N/3 and
// 2N/3 (integer division; DARTS' NetworkCIFAR), the normal cell elsewhere; C channels for
// the first cells, doubled at each reduction. Stem convolutions keep their width relative
// to the first cell's C (DARTS' stem: 3C), rounded. The normal and reduction cells are the
// first of each kind in the body. Throws Error (naming the spec file) when the body has a
// fixed block or lacks a normal or a reduction cell, for N < 3 or C < 1.
Space evaluation_network(const Space& space, int cells, int64_t channels);

}  // namespace cellgraph::spec
