// Helpers the op tests share: seeded uniform tensors, a gradcheck spec with the default
// tolerances, and an element-wise closeness check against a reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "engine/tensor/random.h"
#include "tests/support/gradcheck.h"

namespace cellgraph::testing {

// Uniform in [low, high), seeded.
inline Tensor random(const Shape& shape, uint64_t seed, float low = -1.0f, float high = 1.0f) {
  Rng rng(seed);
  return uniform_tensor(shape, low, high, rng);
}

// A gradcheck spec with the default tolerances (designated initializers would trip
// -Wmissing-field-initializers for the members left at their defaults).
inline GradCheck spec_of(OpKind kind, std::vector<Tensor> inputs, Attrs attrs = NoAttrs{}) {
  GradCheck spec;
  spec.kind = kind;
  spec.attrs = std::move(attrs);
  spec.inputs = std::move(inputs);
  return spec;
}

// One CHECK per tensor: |got - want| <= tolerance * (1 + |want|) everywhere (absolute and
// relative tolerance alike); the first five mismatches are reported.
inline void check_close(const char* what, const std::vector<float>& got,
                        const std::vector<double>& want, double tolerance) {
  REQUIRE(got.size() == want.size());
  std::ostringstream msg;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::fabs(double(got[i]) - want[i]) <= tolerance + tolerance * std::fabs(want[i])) continue;
    if (bad++ < 5) msg << what << "[" << i << "]: got " << got[i] << " want " << want[i] << "\n";
  }
  INFO(msg.str());
  CHECK_MESSAGE(bad == 0, std::string(what), ": ", bad, " of ", got.size(), " elements differ");
}

// max |a - b| over two tensors of one shape.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(double(x[i]) - double(y[i])));
  return m;
}

}  // namespace cellgraph::testing
