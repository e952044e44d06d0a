// 3x3, stride 1, padding 1 pooling with each plane row in vector registers.
//
// pool_loops.cpp copies groups of planes into a padded scratch and runs each separable pass
// as one long loop; on DARTS' normal-cell planes that is three passes over L1 plus the
// copies in and out, and on 8 x 8 planes the per-row copies (8 floats each) cost the most.
// Here a row of 8, 16 or 32 floats is one to four vectors: the row pass takes a row's left
// and right neighbours by shuffling the row's vectors with the padding value (-inf or 0)
// shifted in, keeps the last three row results in registers, and the column pass writes the
// output row straight to y. Same comparisons and additions in the same order as
// pool_loops' passes, padding included, so the same bits.
//
// Max runs on 8-lane vectors: on 16 lanes GCC 12's AVX-512 clone turned the compare-and-
// select into scalar compares (C=16, 32 x 32: 22 ms a call instead of 0.47). Sums run on
// 16 lanes. On CPUs with AVX-512 F, BW and VL, max pooling on rows of 16, and on rows of
// 32 where it keeps positions, runs max_rows_avx512.h instead (mask registers, positions
// kept as bytes; the same values and positions, up to 2.5x faster a call). Planes of other widths
// and other windows stay with pool_loops, and so does max pooling's backward: a gather on these
// rows (each input sums the dy of the outputs pointing at it, 3 x 3 compares a lane) measured no
// faster than pool_loops' scatter, 1048 / 530 / 367 µs a call against 1180 / 545 / 310 on the three
// shapes below; the gather of max_pool_gather.h, in intrinsics with plain loads inside the plane,
// now beats it.
//
// µs a call without autodiff (batch 64, 1 thread, median of 120 over 12 rotating inputs;
// two runs alternated; a ReLU on the same tensors takes 257-287 / 111-136 / 33-56),
// pool_loops -> rows, max / avg: 16 x 32 x 32 850-1065 -> 460-472 / 766-906 -> 274-308;
// 32 x 16 x 16 495-505 -> 176-177 / 483-525 -> 110-115; 64 x 8 x 8 348-351 -> 86-102 /
// 255-260 -> 48-55. NASP step (bench/profile_step --algo nasp --steps 3, 1 thread, three
// rounds alternated with the tree before): pooling forwards 0.136 -> 0.078 s, step 1.522 /
// 1.486 / 1.470 -> 1.467 / 1.452 / 1.420 s.
//
// Then max pooling with positions (a backward coming) and average pooling's backward too.
// Max forward with positions, µs a call as above: 16 x 32 x 32 1194 -> 634, 32 x 16 x 16
// 623 -> 576, 64 x 8 x 8 555 -> 194. In steps (profile_step --steps 2, 1 thread, two
// rounds alternated, load 0.7-0.9, s a step, forward / backward): DARTS max pooling
// 0.187 / 0.246 -> 0.140 / 0.136 forward, average pooling 0.095 / 0.129 -> 0.055 / 0.053
// forward and 0.128 / 0.162 -> 0.096 / 0.083 backward; ISTA-NAS max pooling forward
// 0.042 / 0.038 -> 0.023 / 0.020.
#include "engine/backends/cpu/pool_rows.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/backends/cpu/max_rows_avx512.h"

namespace cellgraph::cpu {

namespace {
using Lanes16 = float __attribute__((vector_size(64)));
using Lanes8 = float __attribute__((vector_size(32)));
using Ints8 = int32_t __attribute__((vector_size(32)));
using Bytes8 = uint8_t __attribute__((vector_size(8)));

// The row's elements left and right of `cur`'s lanes: lane i of `left` is the element
// before lane i (from `prev` at the vector's first lane), of `right` the one after (from
// `next` at its last).
[[gnu::always_inline]] inline void neighbours(const Lanes8& prev, const Lanes8& cur,
                                              const Lanes8& next, Lanes8& left, Lanes8& right) {
  left = __builtin_shufflevector(prev, cur, 7, 8, 9, 10, 11, 12, 13, 14);
  right = __builtin_shufflevector(cur, next, 1, 2, 3, 4, 5, 6, 7, 8);
}
[[gnu::always_inline]] inline void neighbours(const Lanes16& prev, const Lanes16& cur,
                                              const Lanes16& next, Lanes16& left, Lanes16& right) {
  left = __builtin_shufflevector(prev, cur, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                                 29, 30);
  right = __builtin_shufflevector(cur, next, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
}

// Max as pool_loops' passes take it: a strictly greater value or a NaN replaces the best
// (first maximum kept on ties; a NaN propagates).
struct Max {
  static constexpr float kPad = -std::numeric_limits<float>::infinity();
  template <typename Vec>
  [[gnu::always_inline]] static void start(Vec& acc) {
    acc = Vec{} + kPad;
  }
  template <typename Vec>
  [[gnu::always_inline]] static void add(Vec& acc, const Vec& v) {
    acc = ((v > acc) | (v != v)) ? v : acc;  // NOLINT(misc-redundant-expression): v != v is NaN
  }
};

// Sum from 0, as pool_loops' passes add (the padding's zeros included: -0 + 0 is +0).
struct Sum {
  static constexpr float kPad = 0.0f;
  template <typename Vec>
  [[gnu::always_inline]] static void start(Vec& acc) {
    acc = Vec{};
  }
  template <typename Vec>
  [[gnu::always_inline]] static void add(Vec& acc, const Vec& v) {
    acc += v;
  }
};

// A row of W floats as V vectors of L lanes. Aligned to 64 bytes once it is that long:
// GCC gives such locals 64-byte aligned moves, which AddressSanitizer's fake stack frames
// (detect_stack_use_after_return) only honour for a declared alignment (without it,
// scripts/sanitize stopped on a misaligned vmovdqa64).
template <typename Vec, int V>
struct alignas(sizeof(Vec) * V >= 64 ? 64 : alignof(Vec)) Row {
  Vec v[V];
};

// What a plane's pass does besides the window: `in` (h x W, or null) multiplies each input
// row before the row pass, `out` each output row; `add` adds the result into y.
struct Extras {
  const float* in = nullptr;
  const float* out = nullptr;
  bool add = false;
};

// Calls body(j, left, centre, right) for each vector j of a row: its lanes' elements and
// those left and right of them in the row, `pad` past the row's ends.
template <typename Vec, int V, typename Body>
[[gnu::always_inline]] inline void for_neighbours(const Row<Vec, V>& in, const Vec& pad,
                                                  Body&& body) {
#pragma GCC unroll 4
  for (int j = 0; j < V; ++j) {
    Vec left, right;
    neighbours(j == 0 ? pad : in.v[j - 1], in.v[j], j == V - 1 ? pad : in.v[j + 1], left, right);
    body(j, left, in.v[j], right);
  }
}

template <typename Op, typename Vec, int V>
[[gnu::always_inline]] inline void row_pass(const float* x, const float* scale, Row<Vec, V>& out) {
  Row<Vec, V> in;
  std::memcpy(&in, x, sizeof in);
  if (scale != nullptr) {
    Row<Vec, V> s;
    std::memcpy(&s, scale, sizeof s);
    for (int j = 0; j < V; ++j) in.v[j] *= s.v[j];
  }
  for_neighbours<Vec, V>(
      in, Vec{} + Op::kPad,
      [&](int j, const Vec& left, const Vec& centre, const Vec& right)
          __attribute__((always_inline)) {
            Vec acc;
            Op::start(acc);
            Op::add(acc, left);
            Op::add(acc, centre);
            Op::add(acc, right);
            out.v[j] = acc;
          });
}

// One plane: h rows of V vectors.
template <typename Op, typename Vec, int V>
[[gnu::always_inline]] inline void plane_rows(const float* x, int64_t h, const Extras& e,
                                              float* y) {
  constexpr int64_t kWidth = int64_t(sizeof(Row<Vec, V>) / sizeof(float));
  const auto in_scale = [&](int64_t row) {
    return e.in != nullptr ? e.in + row * kWidth : nullptr;
  };
  Row<Vec, V> pad, above, here, below;
  for (int j = 0; j < V; ++j) {
    Op::start(pad.v[j]);  // a padding row's row pass: the padding value itself
    Op::add(pad.v[j], Vec{} + Op::kPad);
  }
  above = pad;
  row_pass<Op, Vec, V>(x, in_scale(0), here);
  for (int64_t oy = 0; oy < h; ++oy) {
    if (oy + 1 < h)
      row_pass<Op, Vec, V>(x + (oy + 1) * kWidth, in_scale(oy + 1), below);
    else
      below = pad;
    Row<Vec, V> out;
    for (int j = 0; j < V; ++j) {
      Vec acc;
      Op::start(acc);
      Op::add(acc, above.v[j]);
      Op::add(acc, here.v[j]);
      Op::add(acc, below.v[j]);
      out.v[j] = acc;
    }
    if (e.out != nullptr) {
      Row<Vec, V> s;
      std::memcpy(&s, e.out + oy * kWidth, sizeof s);
      for (int j = 0; j < V; ++j) out.v[j] *= s.v[j];
    }
    if (e.add) {
      Row<Vec, V> old;
      std::memcpy(&old, y + oy * kWidth, sizeof old);
      for (int j = 0; j < V; ++j) out.v[j] = old.v[j] + out.v[j];
    }
    std::memcpy(y + oy * kWidth, &out, sizeof out);
    above = here;
    here = below;
  }
}

#define CG_POOL_ROWS(name, Op, Vec, V)                                        \
  [[gnu::target_clones("avx512f", "avx2", "default")]] void name(             \
      const float* x, int64_t planes, int64_t h, const Extras& e, float* y) { \
    constexpr int64_t kWidth = int64_t(sizeof(Row<Vec, V>) / sizeof(float));  \
    for (int64_t p = 0; p < planes; ++p)                                      \
      plane_rows<Op, Vec, V>(x + p * h * kWidth, h, e, y + p * h * kWidth);   \
  }
CG_POOL_ROWS(max_rows8, Max, Lanes8, 1)
CG_POOL_ROWS(max_rows16, Max, Lanes8, 2)
CG_POOL_ROWS(max_rows32, Max, Lanes8, 4)
CG_POOL_ROWS(sum_rows8, Sum, Lanes8, 1)
CG_POOL_ROWS(sum_rows16, Sum, Lanes16, 1)
CG_POOL_ROWS(sum_rows32, Sum, Lanes16, 2)
#undef CG_POOL_ROWS

// Max pooling that keeps each window's position (ky * 3 + kx) for its backward, as
// pool_loops' passes track it: the row pass the column kx of its maximum, the column pass
// ky * 3 plus that of the row it takes; both start at 0, so a window of -inf only gives 0.
[[gnu::always_inline]] inline void take_at(Lanes8& best, Lanes8& at, const Lanes8& v,
                                           const Lanes8& position) {
  const auto take = (v > best) | (v != v);  // NOLINT(misc-redundant-expression): v != v is NaN
  best = take ? v : best;
  at = take ? position : at;
}

template <int V>
[[gnu::always_inline]] inline void row_pass_at(const float* x, Row<Lanes8, V>& best,
                                               Row<Lanes8, V>& at) {
  Row<Lanes8, V> in;
  std::memcpy(&in, x, sizeof in);
  const Lanes8 pad = Lanes8{} + Max::kPad;
  for_neighbours<Lanes8, V>(
      in, pad,
      [&](int j, const Lanes8& left, const Lanes8& centre, const Lanes8& right)
          __attribute__((always_inline)) {
            Lanes8 b = pad, a = Lanes8{};
            take_at(b, a, left, Lanes8{});
            take_at(b, a, centre, Lanes8{} + 1.0f);
            take_at(b, a, right, Lanes8{} + 2.0f);
            best.v[j] = b;
            at.v[j] = a;
          });
}

template <int V>
[[gnu::always_inline]] inline void plane_rows_at(const float* x, int64_t h, float* y,
                                                 uint8_t* argmax) {
  using Line = Row<Lanes8, V>;
  constexpr int64_t kWidth = int64_t(sizeof(Line) / sizeof(float));
  Line pad, zero{}, above, above_at, here, here_at, below, below_at;
  for (int j = 0; j < V; ++j) pad.v[j] = Lanes8{} + Max::kPad;
  above = pad;
  above_at = zero;
  row_pass_at<V>(x, here, here_at);
  for (int64_t oy = 0; oy < h; ++oy) {
    if (oy + 1 < h) {
      row_pass_at<V>(x + (oy + 1) * kWidth, below, below_at);
    } else {
      below = pad;
      below_at = zero;
    }
    Line out, out_at;
    for (int j = 0; j < V; ++j) {
      Lanes8 b = Lanes8{} + Max::kPad, a = Lanes8{};
      take_at(b, a, above.v[j], above_at.v[j]);
      take_at(b, a, here.v[j], here_at.v[j] + 3.0f);
      take_at(b, a, below.v[j], below_at.v[j] + 6.0f);
      out.v[j] = b;
      out_at.v[j] = a;
    }
    std::memcpy(y + oy * kWidth, &out, sizeof out);
    for (int j = 0; j < V; ++j) {  // float positions to bytes, a vector at a time
      const auto bytes =
          __builtin_convertvector(__builtin_convertvector(out_at.v[j], Ints8), Bytes8);
      std::memcpy(argmax + oy * kWidth + 8 * j, &bytes, sizeof bytes);
    }
    above = here;
    above_at = here_at;
    here = below;
    here_at = below_at;
  }
}

#define CG_POOL_ROWS_AT(name, V)                                                            \
  [[gnu::target_clones("avx512f", "avx2", "default")]] void name(                           \
      const float* x, int64_t planes, int64_t h, float* y, uint8_t* argmax) {               \
    constexpr int64_t kWidth = 8 * V;                                                       \
    for (int64_t p = 0; p < planes; ++p)                                                    \
      plane_rows_at<V>(x + p * h * kWidth, h, y + p * h * kWidth, argmax + p * h * kWidth); \
  }
CG_POOL_ROWS_AT(max_rows_at8, 1)
CG_POOL_ROWS_AT(max_rows_at16, 2)
CG_POOL_ROWS_AT(max_rows_at32, 4)
#undef CG_POOL_ROWS_AT

using Planes = void (*)(const float*, int64_t, int64_t, const Extras&, float*);

// Runs body(offset of the first plane, planes) over the planes in parallel, a few planes a
// call.
template <typename Body>
void for_plane_runs(const PoolShape& s, Body&& body) {
  constexpr int64_t kPlanesPerCall = 16;
  const int64_t calls = (s.planes + kPlanesPerCall - 1) / kPlanesPerCall;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < calls; ++c) {
    const int64_t first = c * kPlanesPerCall;
    body(first * s.h * s.w, std::min(kPlanesPerCall, s.planes - first));
  }
}

void for_planes(const PoolShape& s, Planes rows, const float* x, const Extras& e, float* y) {
  for_plane_runs(s, [&](int64_t at, int64_t count) { rows(x + at, count, s.h, e, y + at); });
}

// 1 / (in-bounds rows x in-bounds columns) per output, as pool_loops computes it.
std::vector<float> inverse_counts(const PoolShape& s) {
  std::vector<float> inverse(size_t(s.h * s.w));
  const auto inside = [](int64_t o, int64_t extent) {
    return std::min(o + 2, extent) - std::max(o - 1, int64_t{0});
  };
  for (int64_t oy = 0; oy < s.h; ++oy)
    for (int64_t ox = 0; ox < s.w; ++ox)
      inverse[size_t(oy * s.w + ox)] = 1.0f / float(inside(oy, s.h) * inside(ox, s.w));
  return inverse;
}

Planes sum_rows(const PoolShape& s) {
  return s.w == 8 ? sum_rows8 : s.w == 16 ? sum_rows16 : sum_rows32;
}
}  // namespace

bool pool_rows_fit(const PoolShape& s) {
  return s.kernel == 3 && s.stride == 1 && s.pad == 1 && s.h >= 2 && s.oh == s.h && s.ow == s.w &&
         (s.w == 8 || s.w == 16 || s.w == 32);
}

void max_pool_rows(const PoolShape& s, const float* x, float* y) {
  if (max_rows_avx512_fit(s, false)) {
    max_rows_avx512(s, x, y);
    return;
  }
  const Planes rows = s.w == 8 ? max_rows8 : s.w == 16 ? max_rows16 : max_rows32;
  for_planes(s, rows, x, Extras{}, y);
}

void max_pool_rows(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  if (max_rows_avx512_fit(s, true)) {
    max_rows_avx512(s, x, y, argmax);
    return;
  }
  const auto rows = s.w == 8 ? max_rows_at8 : s.w == 16 ? max_rows_at16 : max_rows_at32;
  for_plane_runs(s,
                 [&](int64_t at, int64_t count) { rows(x + at, count, s.h, y + at, argmax + at); });
}

void avg_pool_rows(const PoolShape& s, const float* x, float* y) {
  const std::vector<float> inverse = inverse_counts(s);
  for_planes(s, sum_rows(s), x, Extras{.out = inverse.data()}, y);
}

// The window is symmetric and the output the input's shape, so dx is the same window sum
// over dy / count: what pool_loops' backward computes, in its order.
void avg_pool_rows_backward(const PoolShape& s, const float* dy, float* dx, bool accumulate) {
  const std::vector<float> inverse = inverse_counts(s);
  for_planes(s, sum_rows(s), dy, Extras{.in = inverse.data(), .add = accumulate}, dx);
}

}  // namespace cellgraph::cpu
