// A seeded batch of N(0, 1) images with uniform labels, for the algorithm tests.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/data/batches.h"
#include "engine/tensor/random.h"

namespace cellgraph::testing {

// `n` images of channels x size x size, labels in [0, classes).
inline Batch random_batch(int64_t n, int64_t channels, int64_t size, int64_t classes,
                          uint64_t seed) {
  Rng rng(seed);
  Batch b;
  b.images = normal_tensor({n, channels, size, size}, 0, 1, rng);
  std::vector<float> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(float(rng.below(uint64_t(classes))));
  b.labels = Tensor::from_vector({n}, labels);
  return b;
}

}  // namespace cellgraph::testing
