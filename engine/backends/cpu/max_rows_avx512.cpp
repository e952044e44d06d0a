// 3x3, stride 1, padding 1 max pooling with each plane row in AVX-512 registers, for rows
// of 16 or 32 floats (one or two vectors).
//
// pool_rows.cpp runs the same passes in GCC's vector extensions on 8-lane vectors (its
// 16-lane compare-and-select came out scalar) and converts each output row's positions,
// held as floats, to bytes one element at a time. Here the compares give mask registers,
// the maximum and its position move under the mask (the positions as bytes all along), and
// a row's positions are stored with one vector store.
//
// The same comparisons in the same order as pool_rows' passes, padding included, so the
// same values and the same positions: the row pass keeps, from -inf and position 0, the
// left, centre and right element that is greater than the best so far or a NaN (kx = 0, 1,
// 2); the column pass does the same over the rows above, here and below (ky * 3 added).
//
// ms a call, batch 64, 1 thread, median of 60 calls alternated with pool_rows' loops on 8
// rotating inputs (a throwaway program through max_pool_forward, values and positions
// hashed: the same), three runs, old -> new, with positions / values only: 16 x 32 x 32
// 0.62-0.64 -> 0.35-0.39 / 0.36-0.37 -> 0.28-0.29, 32 x 16 x 16 0.48-0.49 -> 0.17 /
// 0.22 -> 0.155. Inside steps (bench/profile_step --shapes, six runs each alternated) the
// values-only pass on 16 x 32 x 32 lost instead (NASP 0.396 -> 0.438 ms), so pool_rows keeps
// that case; on 8 x 8 planes (one 256-bit vector a row) these loops were no faster (0.19 ->
// 0.20 ms with positions, 0.083 -> 0.126 values only), so they keep pool_rows' too. In
// steps, with the rule as it is: DARTS' max-pool forwards 0.109 -> 0.087 s a step (32 x 16
// x 16 0.502 -> 0.200 ms a call), ISTA-NAS' 0.016 -> 0.012, NASP's 0.038 -> 0.035.
#include "engine/backends/cpu/max_rows_avx512.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <limits>

namespace cellgraph::cpu {

bool max_rows_avx512_fit(const PoolShape& s, bool positions) {
  return s.kernel == 3 && s.stride == 1 && s.pad == 1 && s.h >= 2 && s.oh == s.h && s.ow == s.w &&
         (s.w == 16 || (s.w == 32 && positions)) && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
namespace {
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// A vector of a row: 16 lanes, with its lane mask; the byte positions of its lanes are an
// __m128i.
struct Z16 {
  using V = __m512;
  using M = __mmask16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_positions(uint8_t* p, __m128i v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
  }
  static V fill(float f) { return _mm512_set1_ps(f); }
  static M takes(V v, V best) {
    return M(_mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
  }
  static V select(M m, V best, V v) { return _mm512_mask_mov_ps(best, m, v); }
  // Lane i of left: the element before lane i (prev's last at lane 0); of right: the one
  // after (next's first at the last lane). The masked valignd with every lane set: the
  // plain intrinsic reads an undefined vector that GCC 12 warns about.
  static V left(V prev, V cur) {
    const __m512i c = _mm512_castps_si512(cur);
    return _mm512_castsi512_ps(
        _mm512_mask_alignr_epi32(c, 0xFFFF, c, _mm512_castps_si512(prev), 15));
  }
  static V right(V cur, V next) {
    const __m512i c = _mm512_castps_si512(cur);
    return _mm512_castsi512_ps(
        _mm512_mask_alignr_epi32(c, 0xFFFF, _mm512_castps_si512(next), c, 1));
  }
};

// A row of N vectors: the best values and (kPositions) their byte positions.
template <typename T, int N>
struct Row {
  typename T::V best[N];
  __m128i at[N];
};

template <typename T, bool kPositions>
[[gnu::always_inline]] inline void take(typename T::V& best, __m128i& at, typename T::V v,
                                        __m128i position) {
  const typename T::M m = T::takes(v, best);
  best = T::select(m, best, v);
  if constexpr (kPositions) at = _mm_mask_mov_epi8(at, m, position);
}

template <typename T, int N, bool kPositions>
[[gnu::always_inline]] inline void row_pass(const float* x, Row<T, N>& out) {
  constexpr int kLanes = int(sizeof(typename T::V) / sizeof(float));
  const typename T::V pad = T::fill(kMinusInf);
  typename T::V in[N];
  for (int j = 0; j < N; ++j) in[j] = T::load(x + j * kLanes);
  for (int j = 0; j < N; ++j) {
    typename T::V best = pad;
    __m128i at = _mm_setzero_si128();
    take<T, kPositions>(best, at, T::left(j == 0 ? pad : in[j - 1], in[j]), _mm_set1_epi8(0));
    take<T, kPositions>(best, at, in[j], _mm_set1_epi8(1));
    take<T, kPositions>(best, at, T::right(in[j], j == N - 1 ? pad : in[j + 1]), _mm_set1_epi8(2));
    out.best[j] = best;
    out.at[j] = at;
  }
}

template <typename T, int N, bool kPositions>
[[gnu::always_inline]] inline void plane(const float* x, int64_t h, float* y, uint8_t* argmax) {
  constexpr int kLanes = int(sizeof(typename T::V) / sizeof(float));
  constexpr int64_t kWidth = int64_t(kLanes) * N;
  Row<T, N> pad, above, here, below;
  for (int j = 0; j < N; ++j) {
    pad.best[j] = T::fill(kMinusInf);
    pad.at[j] = _mm_setzero_si128();
  }
  above = pad;
  row_pass<T, N, kPositions>(x, here);
  for (int64_t oy = 0; oy < h; ++oy) {
    if (oy + 1 < h)
      row_pass<T, N, kPositions>(x + (oy + 1) * kWidth, below);
    else
      below = pad;
    for (int j = 0; j < N; ++j) {
      typename T::V best = T::fill(kMinusInf);
      __m128i at = _mm_setzero_si128();
      take<T, kPositions>(best, at, above.best[j], above.at[j]);
      take<T, kPositions>(best, at, here.best[j], _mm_add_epi8(here.at[j], _mm_set1_epi8(3)));
      take<T, kPositions>(best, at, below.best[j], _mm_add_epi8(below.at[j], _mm_set1_epi8(6)));
      T::store(y + oy * kWidth + j * kLanes, best);
      if constexpr (kPositions) T::store_positions(argmax + oy * kWidth + j * kLanes, at);
    }
    above = here;
    here = below;
  }
}

template <typename T, int N, bool kPositions>
void planes(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  const int64_t size = s.h * s.w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p)
    plane<T, N, kPositions>(x + p * size, s.h, y + p * size,
                            kPositions ? argmax + p * size : nullptr);
}

template <bool kPositions>
void run(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  if (s.w == 16)
    planes<Z16, 1, kPositions>(s, x, y, argmax);
  else
    planes<Z16, 2, kPositions>(s, x, y, argmax);
}
}  // namespace

void max_rows_avx512(const PoolShape& s, const float* x, float* y) { run<false>(s, x, y, nullptr); }

void max_rows_avx512(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  run<true>(s, x, y, argmax);
}
#pragma GCC pop_options

}  // namespace cellgraph::cpu
