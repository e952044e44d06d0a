// 3x3 pooling at stride 1 with "same" padding (DARTS' max_pool_3x3 and avg_pool_3x3 on
// normal cells) on planes 8, 16 or 32 columns wide, each row held in vector registers: no
// padded copy of the plane, no per-row loop setup. pool_loops.cpp hands these shapes over
// (the forwards, and average pooling's backward); pool_rows.cpp has the measurements.
#pragma once

#include <cstdint>

#include "engine/backends/cpu/pool_loops.h"

namespace cellgraph::cpu {

bool pool_rows_fit(const PoolShape& s);
// The same values as pool_loops' passes, bit for bit: the same comparisons and additions in
// the same order, the padding's -inf or 0 included.
void max_pool_rows(const PoolShape& s, const float* x, float* y);
// With each output's window position (ky * 3 + kx), for the backward.
void max_pool_rows(const PoolShape& s, const float* x, float* y, uint8_t* argmax);
void avg_pool_rows(const PoolShape& s, const float* x, float* y);
// dx from dy (overwritten, or added into with `accumulate`).
void avg_pool_rows_backward(const PoolShape& s, const float* dy, float* dx, bool accumulate);

}  // namespace cellgraph::cpu
