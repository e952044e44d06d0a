// Our own max and average pooling loops on plain layouts (pool.cpp runs every pooling op
// here). Each group of planes is copied into a padded scratch that stays in L1 / L2, and
// the window runs as two separable passes in vector lanes; 3x3 stride-1 "same" windows on
// planes 8, 16 or 32 wide are handed to pool_rows.h (each row in vector registers, the same
// bits) for everything but max pooling's backward, which at stride 1 with "same" padding
// on planes of whole 16-float vectors runs as a gather on AVX-512 (max_pool_gather.h) and
// elsewhere as a scatter of each output's gradient to its maximum; average pooling's
// stride-2 backward on planes 16 or 32 wide goes to avg_pool_s2_backward.h. Max pooling
// keeps each window's maximum position for its backward and lets a NaN through, as PyTorch
// does (oneDNN's max pooling, which ran these ops before, dropped it). Speed is oneDNN's
// within a few percent over a DARTS search step; pool.cpp's header has the measurements.
#pragma once

#include <cstdint>

namespace cellgraph::cpu {

// A square window `kernel` wide moving by `stride` over planes padded by `pad` on every
// side (the shapes ops/pool.cpp infers). One plane is one (image, channel) pair; planes are
// independent, so the loops run in parallel over them.
struct PoolShape {
  int64_t planes, h, w, oh, ow, kernel, stride, pad;
};

// AVX-512 F, BW and VL: what the 16-lane loops with byte positions under masks need
// (max_pool_gather.h, max_rows_avx512.h).
inline bool avx512_byte_masks() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
}

// Max pooling keeps each output's window position (ky * kernel + kx) for its backward: in
// a byte for windows up to 16 x 16, in an int32 past that. Both need padding of at most
// half the window (the schema's rule), so that no window is all padding.
bool max_pool_byte_positions(const PoolShape& s);

// y = the largest element of each window, the first in row-major order on ties; a NaN in
// a window is its maximum (it propagates, as in PyTorch). With `argmax` non-null, the
// maximum's window position per output, for the backward; with it null the positions are
// not computed at all.
void max_pool_forward(const PoolShape& s, const float* x, float* y, uint8_t* argmax);
void max_pool_forward(const PoolShape& s, const float* x, float* y, int32_t* argmax);
// dx from dy and the forward's argmax: each output's gradient to its maximum; overwrites
// dx, or adds into it with `accumulate` (a gradient that already holds another reader's).
void max_pool_backward(const PoolShape& s, const float* dy, const uint8_t* argmax, float* dx,
                       bool accumulate = false);
void max_pool_backward(const PoolShape& s, const float* dy, const int32_t* argmax, float* dx,
                       bool accumulate = false);

// y = the mean of each window's in-bounds elements (padding excluded from the count).
void avg_pool_forward(const PoolShape& s, const float* x, float* y);
// dx from dy: each output's gradient shared evenly by its in-bounds elements; overwrites
// dx, or adds into it with `accumulate`.
void avg_pool_backward(const PoolShape& s, const float* dy, float* dx, bool accumulate = false);

}  // namespace cellgraph::cpu
