// Splitting a training set into a part that trains the weights and a held-out part, as
// DARTS does for the architecture parameters (the first half of CIFAR-10's training set
// for the weights, the second half for the architecture).
#pragma once

#include <cstdint>
#include <vector>

namespace cellgraph {

struct TrainValSplit {
  std::vector<int64_t> train;  // item indices of the training set
  std::vector<int64_t> val;    // the remaining items; disjoint from train
};

// Splits items 0..n-1: train gets floor(n * train_fraction) items (DARTS' int(np.floor(...)))
// and val the rest. Without `shuffle` train is [0, k) and val [k, n), in order; with it the
// items are first permuted by shuffled_indices(n, seed) (dataset.h), so the same seed gives
// the same split on every machine. Each side keeps the order it was drawn in. Feed the lists
// to BatchIterator. Throws cellgraph::Error when train_fraction is not in (0, 1), n < 0, or
// either side would be empty.
TrainValSplit split_train_val(int64_t n, double train_fraction, uint64_t seed = 0,
                              bool shuffle = false);

}  // namespace cellgraph
