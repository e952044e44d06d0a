#include "algorithms/data_shape.h"

#include "engine/error.h"

namespace cellgraph::algorithms {

DataShape data_shape(const Dataset& data) {
  const Shape& s = data.images.shape();
  return {s[1], s[2], s[3], data.num_classes};
}

DataShape vocabulary_shape(int64_t vocabulary) { return {.classes = vocabulary}; }

std::string fit_space_to_data(spec::Space& space, const DataShape& shape) {
  spec::Network& net = space.network;
  if (shape.text()) {  // a language model: the vocabulary is its classes
    if (net.classes == shape.classes) return "";
    std::string note =
        detail::concat("the spec's language model has a vocabulary of ", net.classes,
                       " words; the corpus has ", shape.classes, ": using the corpus'");
    net.classes = shape.classes;
    return note;
  }
  if (net.in_channels == shape.channels && net.in_height == shape.height &&
      net.in_width == shape.width && net.classes == shape.classes)
    return "";
  std::string note = detail::concat(
      "the spec's network takes [", net.in_channels, ", ", net.in_height, ", ", net.in_width,
      "] with ", net.classes, " classes; the data has [", shape.channels, ", ", shape.height, ", ",
      shape.width, "] with ", shape.classes, " classes: using the data's");
  net.in_channels = shape.channels;
  net.in_height = shape.height;
  net.in_width = shape.width;
  net.classes = shape.classes;
  return note;
}

}  // namespace cellgraph::algorithms
