#include "engine/data/split.h"

#include <cmath>

#include "engine/data/dataset.h"
#include "engine/error.h"

namespace cellgraph {

TrainValSplit split_train_val(int64_t n, double train_fraction, uint64_t seed, bool shuffle) {
  // The negated comparison also rejects NaN.
  if (!(train_fraction > 0.0 && train_fraction < 1.0))
    throw error("train/validation split: train fraction ", train_fraction,
                "; expected a value in (0, 1)");
  if (n < 0) throw error("train/validation split of ", n, " items; expected a count >= 0");
  const auto k = static_cast<int64_t>(std::floor(static_cast<double>(n) * train_fraction));
  if (k == 0 || k == n)
    throw error("train/validation split: ", n, " items with train fraction ", train_fraction,
                " give ", k, " training and ", n - k,
                " validation items; expected at least one on each side");
  std::vector<int64_t> order;
  if (shuffle) {
    order = shuffled_indices(n, seed);
  } else {
    order.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  }
  TrainValSplit out;
  out.train.assign(order.begin(), order.begin() + k);
  out.val.assign(order.begin() + k, order.end());
  return out;
}

}  // namespace cellgraph
