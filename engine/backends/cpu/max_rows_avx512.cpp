// 3x3, stride 1, padding 1 max pooling with each plane row in AVX-512 registers, for rows
// of 16 or 32 floats (one or two vectors).
//
// pool_rows.cpp runs the same passes in GCC's vector extensions on 8-lane vectors (its
// 16-lane compare-and-select came out scalar), with the positions held as floats and turned
// into bytes row by row (before, element by element). Here the compares give mask
// registers, the maximum and its position move under the mask, and the positions are bytes
// all along, a row's stored with one vector store.
//
// The same comparisons in the same order as pool_rows' passes, padding included, so the
// same values and the same positions: the row pass keeps, from -inf and position 0, the
// left, centre and right element that is greater than the best so far or a NaN (kx = 0, 1,
// 2); the column pass does the same over the rows above, here and below (ky * 3 added).
//
// ms a call, batch 64, median of 60 calls through max_pool_forward alternated with
// pool_rows' loops (a throwaway program, each call on one of 8 inputs from memory, then
// again in cache; values and positions compared: the same bytes), old -> new, from memory
// / again: 1 thread, three runs, with positions 16 x 32 x 32 0.86-0.88 -> 0.46-0.47 /
// 0.78-0.80 -> 0.35, 32 x 16 x 16 0.36-0.38 -> 0.19-0.20 / 0.36-0.37 -> 0.17-0.18; values
// only 32 x 16 x 16 0.22-0.23 -> 0.16-0.17 / 0.22 -> 0.16; 2 threads, two runs, with
// positions 0.45-0.48 -> 0.27-0.29 / 0.40-0.43 -> 0.18-0.19 and 0.19 -> 0.10-0.11 / 0.19 ->
// 0.09. Inside steps (bench/profile_step --shapes, six runs each alternated) the values-only
// pass on 16 x 32 x 32 lost (NASP 0.396 -> 0.438 ms a call), so pool_rows keeps that case;
// on 8 x 8 planes (one 256-bit vector a row) these loops were no faster, so they keep
// pool_rows' too. In steps, with the rule as it is: DARTS' max-pool forwards 0.109 -> 0.087
// s a step (32 x 16 x 16 0.502 -> 0.200 ms a call), ISTA-NAS' 0.016 -> 0.012, NASP's 0.038
// -> 0.035.
#include "engine/backends/cpu/max_rows_avx512.h"

#include <immintrin.h>
#include <omp.h>

#include <limits>

#include "engine/backends/cpu/pool_rows.h"

namespace cellgraph::cpu {

bool max_rows_avx512_fit(const PoolShape& s, bool positions) {
  return pool_rows_fit(s) && (s.w == 16 || (s.w == 32 && positions)) && avx512_byte_masks();
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
namespace {
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
constexpr int kLanes = 16;

// A window element wins where it is greater than the best so far or a NaN.
[[gnu::always_inline]] inline __mmask16 wins(__m512 v, __m512 best) {
  return __mmask16(_mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |
                   _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
}

// Lane i of left: the element before lane i (prev's last at lane 0); of right: the one after
// (next's first at the last lane). The masked valignd with every lane set: the plain
// intrinsic reads an undefined vector that GCC 12 warns about.
[[gnu::always_inline]] inline __m512 left(__m512 prev, __m512 cur) {
  const __m512i c = _mm512_castps_si512(cur);
  return _mm512_castsi512_ps(_mm512_mask_alignr_epi32(c, 0xFFFF, c, _mm512_castps_si512(prev), 15));
}
[[gnu::always_inline]] inline __m512 right(__m512 cur, __m512 next) {
  const __m512i c = _mm512_castps_si512(cur);
  return _mm512_castsi512_ps(_mm512_mask_alignr_epi32(c, 0xFFFF, _mm512_castps_si512(next), c, 1));
}

// A row of N vectors: the best values and (kPositions) their byte positions.
template <int N>
struct Row {
  __m512 best[N];
  __m128i at[N];
};

template <bool kPositions>
[[gnu::always_inline]] inline void take(__m512& best, __m128i& at, __m512 v, __m128i position) {
  const __mmask16 m = wins(v, best);
  best = _mm512_mask_mov_ps(best, m, v);
  if constexpr (kPositions) at = _mm_mask_mov_epi8(at, m, position);
}

template <int N, bool kPositions>
[[gnu::always_inline]] inline void row_pass(const float* x, Row<N>& out) {
  const __m512 pad = _mm512_set1_ps(kMinusInf);
  __m512 in[N];
  for (int j = 0; j < N; ++j) in[j] = _mm512_loadu_ps(x + j * kLanes);
  for (int j = 0; j < N; ++j) {
    __m512 best = pad;
    __m128i at = _mm_setzero_si128();
    take<kPositions>(best, at, left(j == 0 ? pad : in[j - 1], in[j]), _mm_set1_epi8(0));
    take<kPositions>(best, at, in[j], _mm_set1_epi8(1));
    take<kPositions>(best, at, right(in[j], j == N - 1 ? pad : in[j + 1]), _mm_set1_epi8(2));
    out.best[j] = best;
    out.at[j] = at;
  }
}

template <int N, bool kPositions>
[[gnu::always_inline]] inline void plane(const float* x, int64_t h, float* y, uint8_t* argmax) {
  constexpr int64_t kWidth = int64_t(kLanes) * N;
  Row<N> pad, above, here, below;
  for (int j = 0; j < N; ++j) {
    pad.best[j] = _mm512_set1_ps(kMinusInf);
    pad.at[j] = _mm_setzero_si128();
  }
  above = pad;
  row_pass<N, kPositions>(x, here);
  for (int64_t oy = 0; oy < h; ++oy) {
    if (oy + 1 < h)
      row_pass<N, kPositions>(x + (oy + 1) * kWidth, below);
    else
      below = pad;
    for (int j = 0; j < N; ++j) {
      __m512 best = _mm512_set1_ps(kMinusInf);
      __m128i at = _mm_setzero_si128();
      take<kPositions>(best, at, above.best[j], above.at[j]);
      take<kPositions>(best, at, here.best[j], _mm_add_epi8(here.at[j], _mm_set1_epi8(3)));
      take<kPositions>(best, at, below.best[j], _mm_add_epi8(below.at[j], _mm_set1_epi8(6)));
      _mm512_storeu_ps(y + oy * kWidth + j * kLanes, best);
      if constexpr (kPositions)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(argmax + oy * kWidth + j * kLanes), at);
    }
    above = here;
    here = below;
  }
}

template <int N, bool kPositions>
void planes(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  const int64_t size = s.h * s.w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p)
    plane<N, kPositions>(x + p * size, s.h, y + p * size, kPositions ? argmax + p * size : nullptr);
}

template <bool kPositions>
void run(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  if (s.w == 16)
    planes<1, kPositions>(s, x, y, argmax);
  else
    planes<2, kPositions>(s, x, y, argmax);
}
}  // namespace

void max_rows_avx512(const PoolShape& s, const float* x, float* y) { run<false>(s, x, y, nullptr); }

void max_rows_avx512(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  run<true>(s, x, y, argmax);
}
#pragma GCC pop_options

}  // namespace cellgraph::cpu
