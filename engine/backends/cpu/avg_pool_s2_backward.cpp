// Average pooling's data gradient for DARTS' reduction cells (3x3, stride 2, padding 1) on
// planes 16 or 32 wide, a row at a time in AVX-512 registers.
//
// pool_loops.cpp forms it for any window in passes over a padded scratch: per padded input
// row the sum of the scaled gradients g = dy / count of the output rows whose windows hold
// it, then per column the same across output columns, then a copy out. At stride 2 input
// row 2m hears from output row m alone and row 2m + 1 from rows m + 1 and m (in that order),
// and likewise columns, so one output row's g (16 or 8 floats, one vector) gives two input
// rows: the rows' sums in registers, then the columns' by a one-lane shift and an interleave.
// The same additions in the same order as those passes, their zeros included ((0 + a) + b,
// and 0 + a where one output reaches an input), so the same bits.
//
// ms a call, batch 64, median of 60 calls through avg_pool_backward alternated with the
// passes (a throwaway program, each call on one of 8 inputs from memory, then again in
// cache; outputs compared: the same bytes), passes -> these, from memory / again: 1 thread,
// three runs, 32 x 32 x 32 planes 1.62-1.70 -> 0.45-0.59 / 1.57-1.64 -> 0.31-0.35, 64 x 16
// x 16 0.79-0.81 -> 0.17-0.28 / 0.74-0.76 -> 0.08-0.14; 2 threads, two runs, 0.85-1.05 ->
// 0.31-0.32 / 0.76-0.95 -> 0.15-0.16 and 0.41-0.49 -> 0.13 / 0.37-0.45 -> 0.05. Inside steps
// (bench/profile_step --shapes, 1 thread, six runs each alternated, medians): DARTS 1.559 ->
// 0.420 and 0.881 -> 0.145 ms a call, its average-pool backwards 0.057 -> 0.027 s a step;
// ISTA-NAS's 0.005 -> 0.001.
#include "engine/backends/cpu/avg_pool_s2_backward.h"

#include <immintrin.h>
#include <omp.h>

#include <vector>

namespace cellgraph::cpu {

bool avg_pool_s2_backward_fit(const PoolShape& s) {
  return s.kernel == 3 && s.stride == 2 && s.pad == 1 && (s.w == 16 || s.w == 32) && s.h % 2 == 0 &&
         s.oh == s.h / 2 && s.ow == s.w / 2 && __builtin_cpu_supports("avx512f");
}

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace {
// One input row from the sums of its output rows, v (ow lanes, zeros past them): column
// 2k takes 0 + v[k], column 2k + 1 (0 + v[k + 1]) + v[k] (v[ow] = 0).
template <int kOut>
[[gnu::always_inline]] inline void input_row(__m512 v, float* dx, bool add) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512 next = _mm512_castsi512_ps(_mm512_mask_alignr_epi32(
      _mm512_castps_si512(v), 0xFFFF, _mm512_castps_si512(zero), _mm512_castps_si512(v), 1));
  const __m512 even = _mm512_add_ps(zero, v);
  const __m512 odd = _mm512_add_ps(_mm512_add_ps(zero, next), v);
  const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  __m512 lo = _mm512_permutex2var_ps(even, low, odd);
  if (add) lo = _mm512_add_ps(_mm512_loadu_ps(dx), lo);
  _mm512_storeu_ps(dx, lo);
  if constexpr (kOut == 16) {
    const __m512i high =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    __m512 hi = _mm512_permutex2var_ps(even, high, odd);
    if (add) hi = _mm512_add_ps(_mm512_loadu_ps(dx + 16), hi);
    _mm512_storeu_ps(dx + 16, hi);
  }
}

// g = dy * inverse count of one output row, zeros past its kOut lanes.
template <int kOut>
[[gnu::always_inline]] inline __m512 scaled(const float* dy, const float* inverse) {
  if constexpr (kOut == 16) return _mm512_mul_ps(_mm512_loadu_ps(dy), _mm512_loadu_ps(inverse));
  // The upper half zeroed by a masked move (_mm512_zextps256_ps512 reads an undefined
  // vector that GCC 12 warns about).
  const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy), _mm256_loadu_ps(inverse));
  return _mm512_maskz_mov_ps(0x00FF, _mm512_castps256_ps512(g));
}

template <int kOut>
void plane(const PoolShape& s, const float* dy, const float* inverse, float* dx, bool add) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 g = scaled<kOut>(dy, inverse);
  for (int64_t m = 0; m < s.oh; ++m) {
    const __m512 below =
        m + 1 < s.oh ? scaled<kOut>(dy + (m + 1) * kOut, inverse + (m + 1) * kOut) : zero;
    input_row<kOut>(_mm512_add_ps(zero, g), dx + 2 * m * s.w, add);
    input_row<kOut>(_mm512_add_ps(_mm512_add_ps(zero, below), g), dx + (2 * m + 1) * s.w, add);
    g = below;
  }
}
}  // namespace

void avg_pool_s2_backward(const PoolShape& s, const float* dy, const float* inverse_count,
                          float* dx, bool accumulate) {
  const int64_t in_size = s.h * s.w, out_size = s.oh * s.ow;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    if (s.ow == 16)
      plane<16>(s, dy + p * out_size, inverse_count, dx + p * in_size, accumulate);
    else
      plane<8>(s, dy + p * out_size, inverse_count, dx + p * in_size, accumulate);
  }
}
#pragma GCC pop_options

}  // namespace cellgraph::cpu
