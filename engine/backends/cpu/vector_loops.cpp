#include "engine/backends/cpu/vector_loops.h"

namespace cellgraph::cpu {

[[gnu::target_clones("avx512f", "avx2", "default")]] void axpy(float a, const float* x, float* y,
                                                               int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void scale_into(float a, const float* x,
                                                                     float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a * x[i];
}

[[gnu::target_clones("avx512f", "avx2", "default")]] float dot(const float* a, const float* b,
                                                               int64_t n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

[[gnu::target_clones("avx512f", "avx2", "default")]] double dot_double(const float* a,
                                                                       const float* b, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += double(a[i]) * double(b[i]);
  return acc;
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void dot_block4x4(const float* a,
                                                                       const float* b, int64_t n,
                                                                       int64_t ld, float* out,
                                                                       int64_t ld_out) {
  const float *a0 = a, *a1 = a + ld, *a2 = a + 2 * ld, *a3 = a + 3 * ld;
  const float *b0 = b, *b1 = b + ld, *b2 = b + 2 * ld, *b3 = b + 3 * ld;
  float s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
  float s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, \
                               s31, s32, s33)
  for (int64_t i = 0; i < n; ++i) {
    const float u0 = a0[i], u1 = a1[i], u2 = a2[i], u3 = a3[i];
    const float v0 = b0[i], v1 = b1[i], v2 = b2[i], v3 = b3[i];
    s00 += u0 * v0;
    s01 += u0 * v1;
    s02 += u0 * v2;
    s03 += u0 * v3;
    s10 += u1 * v0;
    s11 += u1 * v1;
    s12 += u1 * v2;
    s13 += u1 * v3;
    s20 += u2 * v0;
    s21 += u2 * v1;
    s22 += u2 * v2;
    s23 += u2 * v3;
    s30 += u3 * v0;
    s31 += u3 * v1;
    s32 += u3 * v2;
    s33 += u3 * v3;
  }
  const float sums[4][4] = {
      {s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23}, {s30, s31, s32, s33}};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) out[r * ld_out + c] += sums[r][c];
}

namespace {

// Rows of T taps, inlined into each clone so that every clone vectorises them for its
// target; T accumulators (or T shifted reads) per element, one pass over g. The dot keeps
// its accumulators as explicit lanes: an `omp simd` array-section reduction measured about
// 3x slower in a DARTS step's depthwise weight gradients.
template <int T>
[[gnu::always_inline]] inline void dot_taps_row(const float* g, const float* s, int64_t n,
                                                int64_t step, float* out) {
  constexpr int kLanes = 16;  // one AVX-512 register per tap (two AVX2 ones)
  float acc[T][kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int t = 0; t < T; ++t)
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) acc[t][l] += g[i + l] * s[t * step + i + l];
  for (int t = 0; t < T; ++t) {
    float sum = 0.0f;
    for (int l = 0; l < kLanes; ++l) sum += acc[t][l];
    for (int64_t k = i; k < n; ++k) sum += g[k] * s[t * step + k];
    out[t] = sum;
  }
}

template <int T>
[[gnu::always_inline]] inline void correlate_taps_row(const float* g, const float* w, int64_t n,
                                                      int64_t step, float* out) {
  float taps[T];
  for (int t = 0; t < T; ++t) taps[t] = w[t];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float sum = 0.0f;
    for (int t = 0; t < T; ++t) sum += taps[t] * g[i - t * step];
    out[i] += sum;
  }
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void dot_taps3(const float* g, const float* s,
                                                                    int64_t n, int64_t step,
                                                                    float* out) {
  dot_taps_row<3>(g, s, n, step, out);
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void dot_taps5(const float* g, const float* s,
                                                                    int64_t n, int64_t step,
                                                                    float* out) {
  dot_taps_row<5>(g, s, n, step, out);
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void correlate_taps3(const float* g,
                                                                          const float* w, int64_t n,
                                                                          int64_t step,
                                                                          float* out) {
  correlate_taps_row<3>(g, w, n, step, out);
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void correlate_taps5(const float* g,
                                                                          const float* w, int64_t n,
                                                                          int64_t step,
                                                                          float* out) {
  correlate_taps_row<5>(g, w, n, step, out);
}

}  // namespace

void dot_taps(const float* g, const float* src, int64_t n, int64_t step, int taps, float* out) {
  if (taps == 3) return dot_taps3(g, src, n, step, out);
  if (taps == 5) return dot_taps5(g, src, n, step, out);
  for (int t = 0; t < taps; ++t) out[t] = dot(g, src + t * step, n);
}

void correlate_taps(const float* g, const float* w, int64_t n, int64_t step, int taps, float* out) {
  if (taps == 3) return correlate_taps3(g, w, n, step, out);
  if (taps == 5) return correlate_taps5(g, w, n, step, out);
  for (int t = 0; t < taps; ++t) axpy(w[t], g - t * step, out, n);
}

}  // namespace cellgraph::cpu
