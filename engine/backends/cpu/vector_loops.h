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
// y = max(x, 0) as relu computes it (+0 for x <= 0 and for NaN), and relu's gradient
// dx (=, or += with `add`) dy * (y > 0 ? 1 : 0); y may be relu's input or its output (x > 0
// and y > 0 are the same mask). Shared by every kernel that folds a ReLU in (a rectifying
// concat, a conv with ConvAttrs::relu_input), so that folded and unfolded agree bit for bit.
void rectify(const float* x, float* y, int64_t n);
void mask_by(const float* dy, const float* y, float* dx, int64_t n, bool add);
// sum a[i] * b[i], in float lanes
float dot(const float* a, const float* b, int64_t n);
// sum a[i] * b[i], in double lanes (reductions to gradients of scalars)
double dot_double(const float* a, const float* b, int64_t n);

// A row of a kernel's taps at once (depthwise conv gradients on pitched planes):
// out[t] = sum over i < n of g[i] * src[i + t * step], for t < taps.
void dot_taps(const float* g, const float* src, int64_t n, int64_t step, int taps, float* out);
// out[i] += sum over t < taps of w[t] * g[i - t * step], for i < n; g is read from
// g[-(taps - 1) * step] on. One pass over out instead of one per tap: 3 and 5 taps have
// their own loops, about 2x faster than per-tap axpys and dots on DARTS' planes.
void correlate_taps(const float* g, const float* w, int64_t n, int64_t step, int taps, float* out);

}  // namespace cellgraph::cpu
