// The weight gradient of a 1x1, stride 1, unpadded conv: dw[o, c] = sum over images and
// pixels of dy[n, o, p] * x[n, c, p], a matrix product whose inner dimension (the pixels)
// is long and whose result is small (at most a few hundred by a few hundred).
//
// The earlier loops kept the vector lanes along the pixels: a 4 x 4 block of weights was
// 16 dot products over one image's plane, each read from 8 rows of the plane in place. On
// 32 x 32 planes those rows lie 4 KiB apart, in one L1 set, and every row was read again
// for each block of the other operand: 33-62 GFLOP/s, and on 8 x 8 planes 28, where
// oneDNN's per-image GEMM (50 in a step) served instead.
//
// Here the lanes run along channels. Per image, the operand with fewer channels (x when
// in <= out, else dy) is transposed, 16 x 16 floats at a time in registers, into a
// pixel-major scratch, t[p][c]; a block of 8 rows of the other operand then broadcasts
// one float a pixel against one or two vectors of t's row, 8 x 16 or 8 x 32 sums held in
// registers over the whole plane. Each operand is read once per block row instead of once
// per 4 x 4 block, and the block's inner loop is 16 FMAs to 2 vector loads and 8
// broadcasts. Pixel chunks (64-256 pixels, the chunk transposed then every block run on
// it) were tried and were 0-20% slower than whole planes.
//
// Sums: float within the images since the last flush (at least 1024 pixels' worth), then
// double per thread and across threads, so the result does not depend on how images fall
// to threads beyond that grouping. Relative to the sum of |terms| the error measured
// 1e-8-9e-8 (the 4 x 4 blocks: 5e-9-3e-8).
//
// ms a call, batch 64, 1 thread, median of 40 over 6 rotating inputs, the two loops
// alternated in one throwaway program: 16 -> 16 on 32 x 32 0.86-0.94
// -> 0.51-0.67, 48 -> 16 on 32 x 32 2.20-2.26 -> 1.48-1.61, 64 -> 32 on 32 x 32 4.32-4.41
// -> 3.67-4.11, 64 -> 16 on 32 x 32 2.77-2.93 -> 2.03, 32 -> 32 on 16 x 16 0.74-1.02 ->
// 0.43-0.57, 128 -> 64 on 16 x 16 5.29-5.50 -> 3.55-4.32, 64 -> 64 on 16 x 16 2.87-3.00 ->
// 1.76-2.26, 64 -> 64 on 8 x 8 1.16-1.22 -> 0.37-0.42, 256 -> 64 on 8 x 8 4.61-4.71 ->
// 1.54-1.99. In steps (bench/profile_step, 1 thread, three rounds alternated with the tree
// before, s a step, conv backward): ISTA-NAS 0.304 / 0.302 / 0.300 -> 0.282 / 0.279 /
// 0.276, NASP 0.237 / 0.232 / 0.250 -> 0.217 / 0.214 / 0.215, first-order DARTS 2.019 /
// 2.038 / 2.106 -> 1.946 / 1.966 / 1.930; ISTA-NAS at 2 threads 0.235 / 0.230 -> 0.198 /
// 0.196.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/backends/cpu/conv_loops.h"
#include "engine/tensor/tensor.h"

namespace cellgraph::cpu {

namespace {
using Lanes = float __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

// `out` by reference: a vector returned by value warns (-Wpsabi) in the default clone.
[[gnu::always_inline]] inline void load(const float* p, Lanes& out) {
  std::memcpy(&out, p, sizeof out);
}
[[gnu::always_inline]] inline void store(float* p, const Lanes& v) { std::memcpy(p, &v, sizeof v); }

// One step of a 16 x 16 transpose: rows a and b = a + D exchange their D-wide column blocks
// (a keeps its even blocks and takes b's even ones, b the odd ones). Steps 8, 4, 2, 1 in
// turn transpose the tile.
template <int D>
[[gnu::always_inline]] inline void exchange(Lanes& a, Lanes& b) {
  Lanes lo, hi;
  if constexpr (D == 8) {
    lo = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    hi =
        __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  } else if constexpr (D == 4) {
    lo = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    hi = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  } else if constexpr (D == 2) {
    lo = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    hi = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  } else {
    lo = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    hi = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
  a = lo;
  b = hi;
}
template <int D>
[[gnu::always_inline]] inline void exchange_rows(Lanes* r) {
  for (int i = 0; i < 16; ++i)
    if ((i & D) == 0) exchange<D>(r[i], r[i + D]);
}

// dst[j * ld + i] = src[i * pitch + j] for i < rows, j < cols (each at most 16); rows past
// `rows` come out as zeros (the padding lanes of t). kFull: a whole 16 x 16 tile.
template <bool kFull>
[[gnu::always_inline]] inline void transpose_tile(const float* src, int64_t pitch, int64_t rows,
                                                  int64_t cols, float* dst, int64_t ld) {
  Lanes r[16];
  for (int i = 0; i < 16; ++i) {
    if constexpr (kFull) {
      load(src + i * pitch, r[i]);
    } else {
      r[i] = Lanes{};
      if (i < rows) std::memcpy(&r[i], src + i * pitch, cols * sizeof(float));
    }
  }
  exchange_rows<8>(r);
  exchange_rows<4>(r);
  exchange_rows<2>(r);
  exchange_rows<1>(r);
  for (int j = 0; j < (kFull ? 16 : cols); ++j) store(dst + j * ld, r[j]);
}

// sums[r][16 v + l] += sum over p < len of rows[r * pitch + p] * t[p * ld + 16 v + l], for
// MR rows and NV vectors of t's columns, the sums in registers.
template <int MR, int NV>
[[gnu::always_inline]] inline void block(const float* rows, int64_t pitch, const float* t,
                                         int64_t ld, int64_t len, float* sums, int64_t ld_sums) {
  Lanes acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) load(sums + r * ld_sums + kLanes * v, acc[r][v]);
  for (int64_t p = 0; p < len; ++p) {
    Lanes tv[NV];
    for (int v = 0; v < NV; ++v) load(t + p * ld + kLanes * v, tv[v]);
    for (int r = 0; r < MR; ++r) {
      const float s = rows[r * pitch + p];
      for (int v = 0; v < NV; ++v) acc[r][v] += s * tv[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store(sums + r * ld_sums + kLanes * v, acc[r][v]);
}

// One image: `narrow` has the fewer channels (transposed into t), `wide` the others
// (broadcast); sums[w * padded + c] for wide channel w and narrow channel c.
struct Operands {
  int64_t narrow, wide, padded, plane;  // padded: narrow rounded up to whole vectors
};

[[gnu::target_clones("avx512f", "avx2", "default")]] void image_sums(const Operands& q,
                                                                     const float* narrow,
                                                                     const float* wide, float* t,
                                                                     float* sums) {
  for (int64_t p = 0; p < q.plane; p += 16) {
    for (int64_t c = 0; c < q.padded; c += 16) {
      float* dst = t + p * q.padded + c;
      const float* src = narrow + c * q.plane + p;
      if (p + 16 <= q.plane && c + 16 <= q.narrow)
        transpose_tile<true>(src, q.plane, 16, 16, dst, q.padded);
      else
        transpose_tile<false>(src, q.plane, std::min<int64_t>(16, q.narrow - c),
                              std::min<int64_t>(16, q.plane - p), dst, q.padded);
    }
  }
  const auto run = [&]<int MR, int NV>(int64_t w, int64_t c) {
    block<MR, NV>(wide + w * q.plane, q.plane, t + c, q.padded, q.plane, sums + w * q.padded + c,
                  q.padded);
  };
  int64_t c = 0;
  for (; c + 2 * kLanes <= q.padded; c += 2 * kLanes) {
    int64_t w = 0;
    for (; w + 8 <= q.wide; w += 8) run.template operator()<8, 2>(w, c);
    for (; w < q.wide; ++w) run.template operator()<1, 2>(w, c);
  }
  for (; c < q.padded; c += kLanes) {
    int64_t w = 0;
    for (; w + 8 <= q.wide; w += 8) run.template operator()<8, 1>(w, c);
    for (; w < q.wide; ++w) run.template operator()<1, 1>(w, c);
  }
}
}  // namespace

void pointwise_backward_weights(int64_t batch, int64_t in, int64_t out, int64_t plane,
                                const float* x, const float* dy, float* dw) {
  const bool x_narrow = in <= out;
  Operands q{};
  q.narrow = x_narrow ? in : out;
  q.wide = x_narrow ? out : in;
  q.padded = (q.narrow + kLanes - 1) / kLanes * kLanes;
  q.plane = plane;
  const int64_t count = q.wide * q.padded;
  const int threads = omp_get_max_threads();
  const int64_t scratch_per_thread = count + plane * q.padded;
  const Tensor scratch = Tensor::empty(Shape{threads * scratch_per_thread});
  // Zeroed up front: a team smaller than the maximum leaves some copies untouched.
  std::vector<double> partial(size_t(threads * count), 0.0);
  const int64_t images_per_flush = std::max<int64_t>(1, 1024 / std::max<int64_t>(1, plane));
#pragma omp parallel
  {
    float* sums = scratch.data() + omp_get_thread_num() * scratch_per_thread;
    float* t = sums + count;
    double* mine = partial.data() + omp_get_thread_num() * count;
    const auto flush = [&] {
      for (int64_t i = 0; i < count; ++i) mine[i] += sums[i];
      std::fill(sums, sums + count, 0.0f);
    };
    std::fill(sums, sums + count, 0.0f);
    int64_t held = 0;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < batch; ++n) {
      const float* xs = x + n * in * plane;
      const float* gs = dy + n * out * plane;
      image_sums(q, x_narrow ? xs : gs, x_narrow ? gs : xs, t, sums);
      if (++held == images_per_flush) {
        flush();
        held = 0;
      }
    }
    flush();
  }
  for (int64_t w = 0; w < q.wide; ++w) {
    for (int64_t c = 0; c < q.narrow; ++c) {
      double sum = 0;
      for (int th = 0; th < threads; ++th) sum += partial[size_t(th * count + w * q.padded + c)];
      // With x narrow the wide rows are the outputs; else they are the inputs.
      (x_narrow ? dw[w * in + c] : dw[c * in + w]) = float(sum);
    }
  }
}

}  // namespace cellgraph::cpu
