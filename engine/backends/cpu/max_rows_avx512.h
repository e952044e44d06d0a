// 3x3, stride 1, padding 1 max pooling on rows of 16 or 32 floats in AVX-512 registers
// (max_rows_avx512.cpp has why); pool_rows.cpp hands it those shapes on CPUs that have
// AVX-512 F, BW and VL, and keeps its own loops for the others. The same values and
// positions as pool_rows' loops.
#pragma once

#include <cstdint>

#include "engine/backends/cpu/pool_loops.h"

namespace cellgraph::cpu {

// Rows of 16 floats, and rows of 32 where the positions are kept (without them, on 32-wide
// rows pool_rows' own loops measured faster inside steps).
bool max_rows_avx512_fit(const PoolShape& s, bool positions);
void max_rows_avx512(const PoolShape& s, const float* x, float* y);
// With each output's window position (ky * 3 + kx), for the backward.
void max_rows_avx512(const PoolShape& s, const float* x, float* y, uint8_t* argmax);

}  // namespace cellgraph::cpu
