// Small checks shared by the shape-inference functions; each throws Error naming the op.
#pragma once

#include "engine/error.h"
#include "engine/tensor/shape.h"

namespace cellgraph {

inline void require_rank(const char* op, const char* what, const Shape& s, int rank) {
  if (s.rank() != rank)
    throw error(op, ": ", what, " must have rank ", rank, ", got shape ", s.str());
}

inline void require_same(const char* op, const Shape& a, const Shape& b) {
  if (!(a == b))
    throw error(op, ": operands must have the same shape, got ", a.str(), " and ", b.str());
}

// Output extent of a sliding window (convolution, pooling).
inline int64_t window_out(const char* op, int64_t in, int kernel, int stride, int padding,
                          int dilation = 1) {
  const int64_t span = int64_t(dilation) * (kernel - 1) + 1;
  if (stride < 1 || padding < 0 || dilation < 1)
    throw error(op, ": stride and dilation must be >= 1 and padding >= 0");
  if (in + 2 * padding < span)
    throw error(op, ": input extent ", in, " (padding ", padding, ") is smaller than the window ",
                span);
  return (in + 2 * padding - span) / stride + 1;
}

}  // namespace cellgraph
