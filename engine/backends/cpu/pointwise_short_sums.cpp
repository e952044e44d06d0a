// The forward and data gradient of a 1x1, stride 1, unpadded conv where each output sums
// few terms: y[n, o, p] = bias[o] + sum over c < k of w[o, c] * x[n, c, p] with k <= 32.
// The data gradient is the same product with the weights transposed (dx[n, c, p] = sum
// over o of w[o, c] * dy[n, o, p]), so one loop serves both, the data gradient adding into
// a gradient already there where the autodiff asks (BackwardCall::accumulate).
//
// Per image a register tile holds 16 outputs x 16 pixels (16 AVX-512 vectors) across the k
// input rows: each row's 16 pixels are loaded once and met by 16 broadcast weights, 16 FMAs
// to a load, where oneDNN's per-image sgemm (M = outputs, N = pixels, K = k) packs both
// operands first. Only on planes of 1024 pixels and more: there it won or tied in every pass
// and shape it was tried on with k <= 32; on 16 x 16 and 8 x 8 planes it won by up to 4% or
// lost by up to 14% by shape, pass and algorithm (data gradients counted in their whole
// backward's time, the weight gradient included); with k >= 48 it lost by 20-95% on every
// shape but the two 64-term ones on 8 x 8 (64 -> 64: 7% faster in NASP's steps, 3% slower
// in ISTA-NAS'; 64 -> 32: within 2%). Why
// long sums lose was not found; a tile then streams 48 rows and more at once (4 KiB apart
// on 32 x 32 planes: one L1 set), more than the cache or its prefetchers may keep up with.
//
// Measured inside ISTA-NAS steps on the DARTS network (bench/profile_step --shapes, batch
// 64, two rounds alternated with the tree before, ms a call, oneDNN -> these tiles; "bwd" is
// the whole backward, the weight gradient included):
//   1 thread   fwd 16 -> 16 on 32 x 32   0.685 / 0.667 -> 0.482 / 0.493  (36 calls a step)
//              bwd 48 -> 16 on 32 x 32   4.463 / 4.274 -> 3.172 / 3.195
//              bwd 64 -> 16 on 32 x 32   3.648 / 3.544 -> 2.862 / 2.882
//              bwd 64 -> 32 on 32 x 32   7.531 / 7.347 -> 7.392 / 7.277
//              bwd 16 -> 16 on 32 x 32   0.810 / 0.823 -> 0.817 / 0.800
//   2 threads  fwd 16 -> 16 on 32 x 32   0.540 / 0.549 -> 0.252 / 0.256  (our 4 x 32 tiles
//                                                                       before, rule 2)
//              bwd 48 -> 16 on 32 x 32   2.373 / 2.468 -> 1.700 / 1.718
//              bwd 64 -> 32 on 32 x 32   4.228 / 4.305 -> 3.760 / 3.743
// Rejected by the rules above (1 thread, the same runs without the plane limit): fwd
// 48 -> 16 on 32 x 32 2.02-2.30 -> 3.08-3.45, fwd 64 -> 32 on 32 x 32 3.80-3.90 -> 5.79-6.03,
// bwd 128 -> 32 on 16 x 16 2.72-2.74 -> 3.07-3.08, fwd 32 -> 32 on 16 x 16 0.432-0.434 ->
// 0.451-0.460 in ISTA-NAS but 0.381-0.390 -> 0.371-0.377 in NASP.
//
// AVX-512 only (picked at run time); other CPUs keep oneDNN's GEMM, which scripts/isa-check
// runs.
#include <immintrin.h>
#include <omp.h>

#include "engine/backends/cpu/conv_loops.h"

namespace cellgraph::cpu {

namespace {
constexpr int64_t kTile = 16;  // outputs and pixels of a register tile
constexpr int64_t kMaxTerms = 32;
constexpr int64_t kMinPlane = 1024;
}  // namespace

bool pointwise_short_sums_fit(int64_t terms, int64_t outputs, int64_t plane) {
  return terms <= kMaxTerms && outputs % kTile == 0 && plane % kTile == 0 && plane >= kMinPlane &&
         __builtin_cpu_supports("avx512f");
}

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace {
// One image: `outputs` rows of y (pitch `plane`) from `terms` rows of x; w[o * w_pitch + c *
// w_step] is the weight of term c in output o (the conv's weights, or their transpose).
void image_tiles(const float* x, int64_t terms, int64_t outputs, int64_t plane, const float* w,
                 int64_t w_pitch, int64_t w_step, const float* bias, float* y, bool accumulate) {
  for (int64_t ob = 0; ob < outputs; ob += kTile) {
    const float* wb = w + ob * w_pitch;
    float* yb = y + ob * plane;
    for (int64_t p = 0; p < plane; p += kTile) {
      __m512 acc[kTile];
      for (int64_t o = 0; o < kTile; ++o) {
        if (accumulate)
          acc[o] = _mm512_loadu_ps(yb + o * plane + p);
        else
          acc[o] = _mm512_set1_ps(bias != nullptr ? bias[ob + o] : 0.0f);
      }
      for (int64_t c = 0; c < terms; ++c) {
        const __m512 xv = _mm512_loadu_ps(x + c * plane + p);
        for (int64_t o = 0; o < kTile; ++o)
          acc[o] = _mm512_fmadd_ps(_mm512_set1_ps(wb[o * w_pitch + c * w_step]), xv, acc[o]);
      }
      for (int64_t o = 0; o < kTile; ++o) _mm512_storeu_ps(yb + o * plane + p, acc[o]);
    }
  }
}

void run_images(int64_t batch, int64_t terms, int64_t outputs, int64_t plane, const float* x,
                const float* w, int64_t w_pitch, int64_t w_step, const float* bias, float* y,
                bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < batch; ++n)
    image_tiles(x + n * terms * plane, terms, outputs, plane, w, w_pitch, w_step, bias,
                y + n * outputs * plane, accumulate);
}
}  // namespace
#pragma GCC pop_options

void pointwise_short_forward(int64_t batch, int64_t in, int64_t out, int64_t plane, const float* x,
                             const float* w, const float* bias, float* y) {
  run_images(batch, in, out, plane, x, w, in, 1, bias, y, false);
}

void pointwise_short_backward_data(int64_t batch, int64_t in, int64_t out, int64_t plane,
                                   const float* dy, const float* w, float* dx, bool accumulate) {
  // Output c of the product reads w[o, c] for term o: pitch 1 between outputs, `in`
  // between terms.
  run_images(batch, out, in, plane, dy, w, 1, in, nullptr, dx, accumulate);
}

}  // namespace cellgraph::cpu
