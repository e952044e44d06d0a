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

}  // namespace cellgraph::cpu
