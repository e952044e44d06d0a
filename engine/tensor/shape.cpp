// Products of extents are checked for overflow: signed overflow is undefined behaviour, and
// a shape read from a damaged file can carry any extents (see span()).
#include "engine/tensor/shape.h"

#include <algorithm>

#include "engine/error.h"

namespace cellgraph {

int64_t Shape::numel() const {
  // A 0 anywhere makes the count 0, even after extents whose product alone overflows.
  if (std::find(dims_.begin(), dims_.end(), 0) != dims_.end()) return 0;
  int64_t n = 1;
  for (int64_t d : dims_)
    CG_ASSERT(!__builtin_mul_overflow(n, d, &n), "element count of ", str(), " overflows");
  return n;
}

std::optional<int64_t> Shape::span() const {
  int64_t n = 1;
  for (int64_t d : dims_)
    if (d != 0 && __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

std::vector<int64_t> Shape::contiguous_strides() const {
  std::vector<int64_t> strides(dims_.size());
  int64_t s = 1;
  for (size_t i = dims_.size(); i-- > 0;) {
    strides[i] = s;
    if (i > 0)
      CG_ASSERT(!__builtin_mul_overflow(s, dims_[i], &s), "strides of ", str(), " overflow");
  }
  return strides;
}

std::string Shape::str() const {
  std::string out = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(dims_[i]);
  }
  return out + "]";
}

}  // namespace cellgraph
