// Max pooling's backward at stride 1 with "same" padding (DARTS' max_pool_3x3 in normal
// cells) as a gather: each input sums the gradients of the outputs whose maximum it was,
// sixteen inputs a vector. The scatter of pool_loops.cpp adds each output's gradient at its
// maximum's place one float at a time, into a padded plane that is then copied out. Here
// each window position t costs a load of the positions of the 16 outputs that would pick
// these inputs at t, one compare and a masked add of those outputs' gradients.
//
// Same bits as the scatter: an input hears from the outputs at (iy - ky + pad, ix - kx +
// pad), which the scatter visits in raster order, that is t = ky * k + kx from the last
// position down; the gather adds them in that order onto +0.0 as the scatter does onto its
// zeroed plane (a lane no output picks keeps +0.0, as adding nothing leaves the plane's).
// Outputs whose maximum lies in the padding (a window of -inf) reach no input in either.
//
// The loads are plain wherever the 16 outputs lie inside the plane, and masked (AVX-512
// masking, which keeps a load off memory past the plane) only for vectors at its edges.
// With masked loads everywhere the gather ran no faster than the scatter on Zen 5, even on
// data already in cache (16 x 32 x 32: 1.19-1.96 ms a call; plain loads inside, the same
// way: 0.50-0.60). An earlier gather on pool_rows.cpp's rows measured no faster either.
//
// ms a call, batch 64, median of 60 calls through max_pool_backward (a throwaway program,
// the two orders alternated, each call on one of 8 inputs from memory, then again on the
// same input in cache; outputs compared: the same bytes), scatter -> gather, from memory /
// again: 1 thread, three runs, 16 x 32 x 32 0.98-1.02 -> 0.57-0.73 / 0.88-0.93 -> 0.62-0.70,
// 32 x 16 x 16 0.45-0.46 -> 0.31-0.35 / 0.42-0.43 -> 0.30-0.34, 64 x 8 x 8 0.26-0.27 ->
// 0.15-0.16 / 0.25-0.26 -> 0.15; 2 threads, two runs, 0.52-0.92 -> 0.38-0.63 / 0.46-0.77 ->
// 0.38-0.51, 0.23-0.44 -> 0.19-0.31 / 0.22-0.37 -> 0.18-0.25, 0.14 -> 0.08. Inside ISTA-NAS
// steps bench/README.md has the figures ("A Zen 5 host; max pooling's backward as a
// gather").
#include "engine/backends/cpu/max_pool_gather.h"

#include <immintrin.h>
#include <omp.h>

#include <vector>

namespace cellgraph::cpu {

namespace {
constexpr int64_t kLanes = 16;
}  // namespace

bool max_pool_gather_fit(const PoolShape& s) {
  return s.stride == 1 && 2 * s.pad == s.kernel - 1 && s.oh == s.h && s.ow == s.w &&
         s.kernel <= 7 && (s.h * s.w) % kLanes == 0 && s.h * s.w <= 64 * 64 && avx512_byte_masks();
}

namespace {
// For each vector v of a plane and window position t: the lanes whose output at offset[t]
// exists (valid[v * k * k + t]), and offset[t] = (pad - ky) * w + (pad - kx), from an
// input's flat index to that output's.
struct Gather {
  std::vector<int64_t> offset;
  std::vector<uint16_t> valid;
  explicit Gather(const PoolShape& s) {
    const int64_t k2 = s.kernel * s.kernel, size = s.h * s.w;
    offset.resize(size_t(k2));
    valid.assign(size_t(size / kLanes * k2), 0);
    for (int64_t t = 0; t < k2; ++t) {
      const int64_t dy = s.pad - t / s.kernel, dx = s.pad - t % s.kernel;
      offset[size_t(t)] = dy * s.w + dx;
      for (int64_t i = 0; i < size; ++i) {
        const int64_t oy = i / s.w + dy, ox = i % s.w + dx;
        if (oy >= 0 && oy < s.h && ox >= 0 && ox < s.w)
          valid[size_t(i / kLanes * k2 + t)] |= uint16_t(1u << (i % kLanes));
      }
    }
  }
};
}  // namespace

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
namespace {
void gather_plane(const Gather& g, int64_t size, int64_t k2, const float* dy, const uint8_t* at,
                  float* dx, bool accumulate) {
  for (int64_t i = 0; i < size; i += kLanes) {
    const uint16_t* valid = g.valid.data() + i / kLanes * k2;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t t = k2 - 1; t >= 0; --t) {
      const int64_t j = i + g.offset[size_t(t)];
      const __mmask16 v = valid[t];
      __m128i positions;
      __m512 grads;
      if (j >= 0 && j + kLanes <= size) {  // inside the plane: plain loads
        positions = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at + j));
        grads = _mm512_loadu_ps(dy + j);
      } else {
        positions = _mm_maskz_loadu_epi8(v, at + j);
        grads = _mm512_maskz_loadu_ps(v, dy + j);
      }
      const __mmask16 hit = _mm_mask_cmpeq_epi8_mask(v, positions, _mm_set1_epi8(char(t)));
      acc = _mm512_mask_add_ps(acc, hit, acc, grads);
    }
    if (accumulate) acc = _mm512_add_ps(_mm512_loadu_ps(dx + i), acc);
    _mm512_storeu_ps(dx + i, acc);
  }
}
}  // namespace

void max_pool_gather_backward(const PoolShape& s, const float* dy, const uint8_t* argmax, float* dx,
                              bool accumulate) {
  const Gather g(s);
  const int64_t size = s.h * s.w, k2 = s.kernel * s.kernel;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p)
    gather_plane(g, size, k2, dy + p * size, argmax + p * size, dx + p * size, accumulate);
}
#pragma GCC pop_options

}  // namespace cellgraph::cpu
