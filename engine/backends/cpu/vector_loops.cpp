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

// relu as oneDNN's eltwise computes it (elementwise.cpp), bit for bit: x where x > 0, else
// +0 (a NaN and -0 included); its gradient dy times 1 where y > 0, else times 0 (so -0 for
// a negative dy, NaN for an infinite one).
[[gnu::target_clones("avx512f", "avx2", "default")]] void rectify(const float* x, float* y,
                                                                  int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
[[gnu::target_clones("avx512f", "avx2", "default")]] void mask_by(const float* dy, const float* y,
                                                                  float* dx, int64_t n, bool add) {
  // clang-tidy takes the two simd loops for clones; one adds, the other stores.
  if (add) {  // NOLINT(bugprone-branch-clone)
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
  }
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
