// Max pooling's backward at stride 1 with "same" padding as a gather in AVX-512 lanes
// (max_pool_gather.cpp has why and how); pool_loops.cpp hands it the shapes that fit and
// keeps its scatter for the rest.
#pragma once

#include <cstdint>

#include "engine/backends/cpu/pool_loops.h"

namespace cellgraph::cpu {

// Stride 1, "same" padding, windows up to 7 x 7, planes of whole vectors (h * w a multiple
// of 16, at most 64 x 64), on a CPU with AVX-512 F, BW and VL.
bool max_pool_gather_fit(const PoolShape& s);
// dx from dy and the forward's byte positions, the scatter's bits; overwrites dx, or adds
// into it with `accumulate`.
void max_pool_gather_backward(const PoolShape& s, const float* dy, const uint8_t* argmax, float* dx,
                              bool accumulate);

}  // namespace cellgraph::cpu
