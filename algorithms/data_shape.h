// A search space is independent of the data it is run on: the runner fits the spec's
// network input and class count to the data set. Serves search, train, eval, export and
// derive alike.
#pragma once

#include <cstdint>
#include <string>

#include "engine/data/dataset.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// The network input and class count of a data set. A text corpus has only a vocabulary
// (classes; channels, height and width 0): a language model's input length is the spec's.
struct DataShape {
  int64_t channels = 0, height = 0, width = 0, classes = 0;
  bool text() const { return channels == 0; }
};
DataShape data_shape(const Dataset& data);
DataShape vocabulary_shape(int64_t vocabulary);

// Sets the space's network input and classes to `shape`. Returns "" when they already
// agree, else a one-line note saying what changed.
std::string fit_space_to_data(spec::Space& space, const DataShape& shape);

}  // namespace cellgraph::algorithms
