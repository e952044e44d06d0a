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

namespace {

[[gnu::target_clones("avx512f", "avx2", "default")]] void dot_taps3(const float* g, const float* s,
                                                                    int64_t n, int64_t step,
                                                                    float* out) {
  const float *s0 = s, *s1 = s + step, *s2 = s + 2 * step;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2)
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    a0 += x * s0[i];
    a1 += x * s1[i];
    a2 += x * s2[i];
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void dot_taps5(const float* g, const float* s,
                                                                    int64_t n, int64_t step,
                                                                    float* out) {
  const float *s0 = s, *s1 = s + step, *s2 = s + 2 * step, *s3 = s + 3 * step, *s4 = s + 4 * step;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4)
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    a0 += x * s0[i];
    a1 += x * s1[i];
    a2 += x * s2[i];
    a3 += x * s3[i];
    a4 += x * s4[i];
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
  out[4] = a4;
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void correlate_taps3(const float* g,
                                                                          const float* w, int64_t n,
                                                                          int64_t step,
                                                                          float* out) {
  const float w0 = w[0], w1 = w[1], w2 = w[2];
  const float *g1 = g - step, *g2 = g - 2 * step;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] += w0 * g[i] + w1 * g1[i] + w2 * g2[i];
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void correlate_taps5(const float* g,
                                                                          const float* w, int64_t n,
                                                                          int64_t step,
                                                                          float* out) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4];
  const float *g1 = g - step, *g2 = g - 2 * step, *g3 = g - 3 * step, *g4 = g - 4 * step;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    out[i] += w0 * g[i] + w1 * g1[i] + w2 * g2[i] + w3 * g3[i] + w4 * g4[i];
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
