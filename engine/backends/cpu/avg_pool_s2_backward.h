// Average pooling's data gradient at 3x3, stride 2, padding 1 on planes 16 or 32 wide (an
// even number of rows), a row at a time in AVX-512 registers (avg_pool_s2_backward.cpp has
// why and how); pool_loops.cpp hands it those shapes and keeps its passes for the rest.
#pragma once

#include <cstdint>

#include "engine/backends/cpu/pool_loops.h"

namespace cellgraph::cpu {

bool avg_pool_s2_backward_fit(const PoolShape& s);
// dx from dy and each output's 1 / (in-bounds elements of its window), the same bits as
// pool_loops' passes; overwrites dx, or adds into it with `accumulate`.
void avg_pool_s2_backward(const PoolShape& s, const float* dy, const float* inverse_count,
                          float* dx, bool accumulate);

}  // namespace cellgraph::cpu
