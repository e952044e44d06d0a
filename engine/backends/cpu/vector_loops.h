// The long unit-stride loops the hand-written CPU kernels share. The project builds
// without -march (one binary for any x86-64), so each has AVX-512 and AVX2 clones chosen
// when the library loads (target_clones), and `omp simd` lets the reductions use vector
// lanes: about 2x over the SSE2 build on these loops (depthwise conv, weighted sums).
#pragma once

#include <cstdint>

namespace cellgraph::cpu {

// y += a * x
void axpy(float a, const float* x, float* y, int64_t n);
// y = a * x
void scale_into(float a, const float* x, float* y, int64_t n);
// sum a[i] * b[i], in float lanes
float dot(const float* a, const float* b, int64_t n);
// sum a[i] * b[i], in double lanes (reductions to gradients of scalars)
double dot_double(const float* a, const float* b, int64_t n);

}  // namespace cellgraph::cpu
