#include "engine/backends/cpu/pool_loops.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "engine/backends/cpu/avg_pool_s2_backward.h"
#include "engine/backends/cpu/max_pool_gather.h"
#include "engine/backends/cpu/pool_rows.h"
#include "engine/error.h"
#include "engine/tensor/tensor.h"

namespace cellgraph::cpu {

namespace {
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBytePositionsKernel = 16;  // 16 x 16 window positions fit in a byte

// Planes are copied into a scratch plane padded by `pad` on every side (-inf for max, 0
// for average), so no window is clipped, and the window runs in two passes, as it is
// separable: the row pass reduces each padded row over the window's width at every output
// column, the column pass reduces those over the window's height (3x3: 4 compares or adds
// an output instead of 8; the max passes also carry the position).
//
// Each pass is one loop over a whole group of planes rather than oh short rows per
// plane (8 x 8 planes: 8 floats a row, half an AVX-512 vector). The padded plane's pitch
// pw is w + 2 pad rounded up to a multiple of the stride, so row pass lane i = r hp + j
// (hp = pw / stride lanes a row) reads in[i stride + kx]; the column pass's lane i reads
// rows[i + ky hp], and output row oy is its lanes from oy stride hp on. A group stacks
// `group` padded planes of ph rows (h + 2 pad rounded up to the stride too, so that every
// plane starts on an output row); a window never reaches from one plane into the next,
// since (oh - 1) stride + k <= ph. Lanes past ow in each row, the stride - 1 rows of lanes
// between output rows and the rows between planes are computed and dropped. The row
// pass's last lanes read up to k - 2 floats past the group: `kernel` floats of slack after
// it, filled like the border.
struct Padded {
  int64_t pw, ph, hp, group, floats;
  explicit Padded(const PoolShape& s)
      : pw(round_up(s.w + 2 * s.pad, s.stride)),
        ph(round_up(s.h + 2 * s.pad, s.stride)),
        hp(pw / s.stride),
        // About 4096 padded floats a group: each pass's arrays stay in L1 / L2.
        group(std::clamp<int64_t>(4096 / (ph * pw), 1, s.planes)),
        floats(group * ph * pw + s.kernel) {}
  static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
  int64_t row_lanes() const { return group * ph * hp; }
  // Up to the last output row of the group's last plane.
  int64_t column_lanes(const PoolShape& s) const {
    return ((group - 1) * ph + (s.oh - 1) * s.stride + 1) * hp;
  }
  int64_t groups(const PoolShape& s) const { return (s.planes + group - 1) / group; }
};

// Runs body(first plane, planes, scratch) over the groups of planes; each thread's scratch
// (`floats` long) is filled with `fill` once, so a border no body writes keeps it.
template <typename Body>
void for_groups(const PoolShape& s, const Padded& g, int64_t floats, float fill, Body&& body) {
  const Tensor scratch = Tensor::empty(Shape{omp_get_max_threads() * floats});
#pragma omp parallel
  {
    float* mine = scratch.data() + omp_get_thread_num() * floats;
    std::fill(mine, mine + floats, fill);
#pragma omp for schedule(static)
    for (int64_t group = 0; group < g.groups(s); ++group) {
      const int64_t first = group * g.group;
      body(first, std::min(g.group, s.planes - first), mine);
    }
  }
}

// Copies `count` h x w planes into the group's padded planes' interiors.
[[gnu::always_inline]] inline void copy_in(const PoolShape& s, const Padded& g, const float* x,
                                           int64_t count, float* in) {
  for (int64_t b = 0; b < count; ++b)
    for (int64_t iy = 0; iy < s.h; ++iy) {
      float* dst = in + (b * g.ph + iy + s.pad) * g.pw + s.pad;
      const float* src = x + (b * s.h + iy) * s.w;
#pragma omp simd
      for (int64_t ix = 0; ix < s.w; ++ix) dst[ix] = src[ix];
    }
}

// dst = src over n floats, or dst += src with `add` (a gradient adding into another's).
[[gnu::always_inline]] inline void copy_row(const float* src, int64_t n, float* dst, bool add) {
  // clang-tidy takes the two simd loops for clones; one adds, the other stores.
  if (add) {  // NOLINT(bugprone-branch-clone)
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// The passes' loops, n lanes each. K and S fixed at compile time (3 and 1 or 2, DARTS'
// pools) unroll the window and make the loads unit or constant stride; 0 reads them from
// the arguments. The max keeps the first maximum on ties (strictly greater replaces it;
// rows are reduced in order, so that is the first in row-major order), and a NaN is taken
// and then kept, as nothing compares greater than it: NaNs propagate, as in PyTorch.
// Bitwise | rather than || keeps the loop free of branches, which GCC needs to vectorize.
// Positions false: the maxima alone, when no backward will read the positions (a forward
// without autodiff: NASP's forward-only candidates, eval, inference); `at` and `row_at` are
// then not touched. Tracking them is much of the passes' work: max_pool_forward 3x3 per call
// (1 thread, batch 64, median of 41 over 8 rotating inputs, two runs, ms, with -> without
// positions): 16 x 32 x 32 planes 1.12-1.18 -> 0.81, at stride 2 0.71-0.72 -> 0.58-0.60,
// 32 x 16 x 16 0.61-0.75 -> 0.47-0.48, 64 x 8 x 8 0.55 -> 0.33-0.35.
template <int K, int S, bool Positions>
[[gnu::always_inline]] inline void row_max(const float* in, int64_t n, int64_t kernel,
                                           int64_t stride, float* __restrict best,
                                           float* __restrict at) {
  const int64_t k = K > 0 ? K : kernel, st = S > 0 ? S : stride;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float b = kMinusInf, a = 0.0f;
    for (int64_t kx = 0; kx < k; ++kx) {
      const float v = in[i * st + kx];
      const bool take = (v > b) | (v != v);
      b = take ? v : b;
      if constexpr (Positions) a = take ? float(kx) : a;
    }
    best[i] = b;
    if constexpr (Positions) at[i] = a;
  }
}

// Over rows[i + ky pitch], ky < k, with the row pass's positions: at = ky k + kx.
template <int K, bool Positions>
[[gnu::always_inline]] inline void column_max(const float* rows, const float* row_at, int64_t pitch,
                                              int64_t n, int64_t kernel, float* __restrict best,
                                              float* __restrict at) {
  const int64_t k = K > 0 ? K : kernel;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float b = kMinusInf, a = 0.0f;
    for (int64_t ky = 0; ky < k; ++ky) {
      const float v = rows[i + ky * pitch];
      const bool take = (v > b) | (v != v);
      b = take ? v : b;
      if constexpr (Positions) a = take ? float(ky * k) + row_at[i + ky * pitch] : a;
    }
    best[i] = b;
    if constexpr (Positions) at[i] = a;
  }
}

template <int K, int S>
[[gnu::always_inline]] inline void row_sum(const float* in, int64_t n, int64_t kernel,
                                           int64_t stride, float* __restrict sum) {
  const int64_t k = K > 0 ? K : kernel, st = S > 0 ? S : stride;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (int64_t kx = 0; kx < k; ++kx) acc += in[i * st + kx];
    sum[i] = acc;
  }
}

template <int K>
[[gnu::always_inline]] inline void column_sum(const float* rows, int64_t pitch, int64_t n,
                                              int64_t kernel, float* __restrict sum) {
  const int64_t k = K > 0 ? K : kernel;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (int64_t ky = 0; ky < k; ++ky) acc += rows[i + ky * pitch];
    sum[i] = acc;
  }
}

// A forward group's scratch: the padded planes, then `arrays` of the row and column
// passes' lanes each.
int64_t forward_scratch(const PoolShape& s, const Padded& g, int arrays) {
  return g.floats + arrays * (g.row_lanes() + g.column_lanes(s));
}

// Output row oy of the group's plane b is the column pass's lanes from this one on.
int64_t output_lane(const PoolShape& s, const Padded& g, int64_t b, int64_t oy) {
  return (b * g.ph + oy * s.stride) * g.hp;
}

template <int K, int S, typename Position>
[[gnu::always_inline]] inline void max_group(const PoolShape& s, const Padded& g, const float* x,
                                             int64_t count, float* scratch, float* y,
                                             Position* argmax) {
  float* in = scratch;
  float* rows = in + g.floats;
  float* row_at = rows + g.row_lanes();
  float* best = row_at + g.row_lanes();
  float* at = best + g.column_lanes(s);
  copy_in(s, g, x, count, in);
  if (argmax == nullptr) {
    row_max<K, S, false>(in, g.row_lanes(), s.kernel, s.stride, rows, nullptr);
    column_max<K, false>(rows, nullptr, g.hp, g.column_lanes(s), s.kernel, best, nullptr);
  } else {
    row_max<K, S, true>(in, g.row_lanes(), s.kernel, s.stride, rows, row_at);
    column_max<K, true>(rows, row_at, g.hp, g.column_lanes(s), s.kernel, best, at);
  }
  for (int64_t b = 0; b < count; ++b)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const int64_t lane = output_lane(s, g, b, oy), out = (b * s.oh + oy) * s.ow;
      const float* src = best + lane;
      float* dst = y + out;
#pragma omp simd
      for (int64_t ox = 0; ox < s.ow; ++ox) dst[ox] = src[ox];
      if (argmax == nullptr) continue;
      const float* a = at + lane;
      Position* am = argmax + out;
#pragma omp simd
      for (int64_t ox = 0; ox < s.ow; ++ox) am[ox] = static_cast<Position>(a[ox]);
    }
}

// The window means: sums times 1 / count (oh x ow, the same for every plane).
template <int K, int S>
[[gnu::always_inline]] inline void avg_group(const PoolShape& s, const Padded& g, const float* x,
                                             const float* inverse_count, int64_t count,
                                             float* scratch, float* y) {
  float* in = scratch;
  float* rows = in + g.floats;
  float* sum = rows + g.row_lanes();
  copy_in(s, g, x, count, in);
  row_sum<K, S>(in, g.row_lanes(), s.kernel, s.stride, rows);
  column_sum<K>(rows, g.hp, g.column_lanes(s), s.kernel, sum);
  for (int64_t b = 0; b < count; ++b)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const float* src = sum + output_lane(s, g, b, oy);
      const float* inv = inverse_count + oy * s.ow;
      float* dst = y + (b * s.oh + oy) * s.ow;
#pragma omp simd
      for (int64_t ox = 0; ox < s.ow; ++ox) dst[ox] = src[ox] * inv[ox];
    }
}

// The data gradient of average pooling at other strides and paddings: the forward's passes
// transposed, in gather form.
// `grad` holds dy / count, output row oy of plane b at lane row k + b ph / stride + oy (k
// rows of zero lanes first; lanes past ow and rows past oh zero). Column pass transposed:
// padded row r = stride my + q (q < stride) gets the grads of lane rows my - t for every t
// with ky = q + stride t < k. Row pass transposed, per row: padded column c = stride m + q
// gets lane m - t for kx = q + stride t < k; each row of `rows` has k zero lanes before it
// (pitch hp + k), which lanes m - t < 0 read. Every padded element is written, so neither
// pass needs zeroing first.
template <int K, int S>
[[gnu::always_inline]] inline void avg_backward_group(const PoolShape& s, const Padded& g,
                                                      const float* grad, int64_t count, float* rows,
                                                      float* padded, float* dx, bool add) {
  const int64_t k = K > 0 ? K : s.kernel, st = S > 0 ? S : s.stride;
  const int64_t pitch = g.hp + k, padded_rows = g.group * g.ph;
  for (int64_t r = 0; r < padded_rows; ++r) {
    const int64_t my = r / st, q = r % st;
    float* out = rows + r * pitch + k;
#pragma omp simd
    for (int64_t j = 0; j < g.hp; ++j) {
      float acc = 0.0f;
      for (int64_t t = 0; q + st * t < k; ++t) acc += grad[(k + my - t) * g.hp + j];
      out[j] = acc;
    }
  }
  for (int64_t r = 0; r < padded_rows; ++r) {
    const float* src = rows + r * pitch + k;
    float* out = padded + r * g.pw;
#pragma omp simd
    for (int64_t m = 0; m < g.hp; ++m)
      for (int64_t q = 0; q < st; ++q) {
        float acc = 0.0f;
        for (int64_t t = 0; q + st * t < k; ++t) acc += src[m - t];
        out[m * st + q] = acc;
      }
  }
  for (int64_t b = 0; b < count; ++b)
    for (int64_t iy = 0; iy < s.h; ++iy)
      copy_row(padded + (b * g.ph + iy + s.pad) * g.pw + s.pad, s.w, dx + (b * s.h + iy) * s.w,
               add);
}

// The data gradient of average pooling at stride 1 with "same" padding (2 pad = k - 1, so
// oh = h and ow = w): the outputs whose windows hold input (iy, ix) are those of the window
// centred on it, so dx is the window sum of g = dy / count, zero-padded: the forward's two
// passes on g, without the transposed passes' short rows (below). 3x3, per call (1 thread,
// batch 64, median of 41 over 8 rotating inputs, two alternated runs, ms, transposed ->
// these): 16 x 32 x 32 planes 0.85-1.47 -> 0.73-0.75, 32 x 16 x 16 0.81-0.82 -> 0.50-0.57,
// 64 x 8 x 8 0.70 -> 0.26-0.42.
template <int K>
[[gnu::always_inline]] inline void avg_backward_same_group(const PoolShape& s, const Padded& g,
                                                           const float* dy,
                                                           const float* inverse_count,
                                                           int64_t count, float* scratch, float* dx,
                                                           bool add) {
  float* in = scratch;
  float* rows = in + g.floats;
  float* sum = rows + g.row_lanes();
  for (int64_t b = 0; b < count; ++b)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      float* dst = in + (b * g.ph + oy + s.pad) * g.pw + s.pad;
      const float* src = dy + (b * s.oh + oy) * s.ow;
      const float* inv = inverse_count + oy * s.ow;
#pragma omp simd
      for (int64_t ox = 0; ox < s.ow; ++ox) dst[ox] = src[ox] * inv[ox];
    }
  row_sum<K, 1>(in, g.row_lanes(), s.kernel, 1, rows);
  column_sum<K>(rows, g.hp, g.column_lanes(s), s.kernel, sum);
  for (int64_t b = 0; b < count; ++b)
    for (int64_t iy = 0; iy < s.h; ++iy)
      copy_row(sum + output_lane(s, g, b, iy), s.w, dx + (b * s.h + iy) * s.w, add);
}

#define CG_POOL_CLONES [[gnu::target_clones("avx512f", "avx2", "default")]]
#define CG_MAX_GROUP(name, K, S, Position)                                                     \
  CG_POOL_CLONES void name(const PoolShape& s, const Padded& g, const float* x, int64_t count, \
                           float* scratch, float* y, Position* argmax) {                       \
    max_group<K, S, Position>(s, g, x, count, scratch, y, argmax);                             \
  }
CG_MAX_GROUP(max_group_3x3_s1, 3, 1, uint8_t)
CG_MAX_GROUP(max_group_3x3_s2, 3, 2, uint8_t)
CG_MAX_GROUP(max_group_any, 0, 0, uint8_t)
CG_MAX_GROUP(max_group_wide, 0, 0, int32_t)
#undef CG_MAX_GROUP

#define CG_AVG_GROUP(name, K, S)                                                                  \
  CG_POOL_CLONES void name(const PoolShape& s, const Padded& g, const float* x,                   \
                           const float* inverse_count, int64_t count, float* scratch, float* y) { \
    avg_group<K, S>(s, g, x, inverse_count, count, scratch, y);                                   \
  }
CG_AVG_GROUP(avg_group_3x3_s1, 3, 1)
CG_AVG_GROUP(avg_group_3x3_s2, 3, 2)
CG_AVG_GROUP(avg_group_any, 0, 0)
#undef CG_AVG_GROUP

#define CG_AVG_BACKWARD_GROUP(name, K, S)                                                         \
  CG_POOL_CLONES void name(const PoolShape& s, const Padded& g, const float* grad, int64_t count, \
                           float* rows, float* padded, float* dx, bool add) {                     \
    avg_backward_group<K, S>(s, g, grad, count, rows, padded, dx, add);                           \
  }
CG_AVG_BACKWARD_GROUP(avg_backward_3x3_s1, 3, 1)
CG_AVG_BACKWARD_GROUP(avg_backward_3x3_s2, 3, 2)
CG_AVG_BACKWARD_GROUP(avg_backward_any, 0, 0)
#undef CG_AVG_BACKWARD_GROUP

#define CG_AVG_BACKWARD_SAME(name, K)                                                            \
  CG_POOL_CLONES void name(const PoolShape& s, const Padded& g, const float* dy,                 \
                           const float* inverse_count, int64_t count, float* scratch, float* dx, \
                           bool add) {                                                           \
    avg_backward_same_group<K>(s, g, dy, inverse_count, count, scratch, dx, add);                \
  }
CG_AVG_BACKWARD_SAME(avg_backward_same_3x3, 3)
CG_AVG_BACKWARD_SAME(avg_backward_same_any, 0)
#undef CG_AVG_BACKWARD_SAME
#undef CG_POOL_CLONES

template <typename Group>
Group pick(const PoolShape& s, Group s1, Group s2, Group any) {
  if (s.kernel != 3) return any;
  return s.stride == 1 ? s1 : s.stride == 2 ? s2 : any;
}

// 1 / (in-bounds rows x in-bounds columns) of every output's window.
std::vector<float> inverse_counts(const PoolShape& s) {
  const auto inside = [&](int64_t o, int64_t extent) {
    const int64_t first = o * s.stride - s.pad;
    return std::min(first + s.kernel, extent) - std::max(first, int64_t{0});
  };
  std::vector<float> inv(size_t(s.oh * s.ow));
  for (int64_t oy = 0; oy < s.oh; ++oy)
    for (int64_t ox = 0; ox < s.ow; ++ox)
      inv[size_t(oy * s.ow + ox)] = 1.0f / float(inside(oy, s.h) * inside(ox, s.w));
  return inv;
}

// The shapes ops/pool.cpp infers.
bool window_fits(const PoolShape& s) {
  return s.kernel >= 1 && s.stride >= 1 && s.pad >= 0 && 2 * s.pad <= s.kernel &&
         s.oh == (s.h + 2 * s.pad - s.kernel) / s.stride + 1 &&
         s.ow == (s.w + 2 * s.pad - s.kernel) / s.stride + 1 && s.oh >= 1 && s.ow >= 1;
}
}  // namespace

bool max_pool_byte_positions(const PoolShape& s) { return s.kernel <= kBytePositionsKernel; }

namespace {
template <typename Position, typename Group>
void max_pool_groups(const PoolShape& s, const float* x, float* y, Position* argmax, Group group) {
  CG_ASSERT(window_fits(s), "max_pool loops: unsupported window");
  const Padded g(s);
  const int64_t in_size = s.h * s.w, out_size = s.oh * s.ow;
  for_groups(s, g, forward_scratch(s, g, 2), kMinusInf, [&](int64_t p, int64_t count, float* m) {
    group(s, g, x + p * in_size, count, m, y + p * out_size,
          argmax != nullptr ? argmax + p * out_size : nullptr);
  });
}

// A scatter: each output adds its gradient at its maximum's place in the padded planes.
template <typename Position>
void max_pool_scatter(const PoolShape& s, const float* dy, const Position* argmax, float* dx,
                      bool accumulate) {
  CG_ASSERT(window_fits(s), "max_pool loops: unsupported window");
  const Padded g(s);
  std::vector<int64_t> offset(size_t(s.kernel * s.kernel));
  for (int64_t t = 0; t < s.kernel * s.kernel; ++t)
    offset[size_t(t)] = (t / s.kernel) * g.pw + t % s.kernel;
  const int64_t padded_size = g.group * g.ph * g.pw, out_size = s.oh * s.ow;
  for_groups(s, g, padded_size, 0.0f, [&](int64_t p, int64_t count, float* padded) {
    std::fill(padded, padded + padded_size, 0.0f);
    for (int64_t b = 0; b < count; ++b) {
      const float* grad = dy + (p + b) * out_size;
      const Position* at = argmax + (p + b) * out_size;
      for (int64_t oy = 0; oy < s.oh; ++oy) {
        float* row = padded + (b * g.ph + oy * s.stride) * g.pw;
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          const int64_t i = oy * s.ow + ox;
          row[ox * s.stride + offset[size_t(at[i])]] += grad[i];
        }
      }
      float* out = dx + (p + b) * s.h * s.w;
      for (int64_t iy = 0; iy < s.h; ++iy)
        copy_row(padded + (b * g.ph + iy + s.pad) * g.pw + s.pad, s.w, out + iy * s.w, accumulate);
    }
  });
}
}  // namespace

void max_pool_forward(const PoolShape& s, const float* x, float* y, uint8_t* argmax) {
  CG_ASSERT(max_pool_byte_positions(s), "max_pool: ", s.kernel,
            "-wide windows need int32 positions");
  if (pool_rows_fit(s)) {
    if (argmax == nullptr)
      max_pool_rows(s, x, y);
    else
      max_pool_rows(s, x, y, argmax);
    return;
  }
  max_pool_groups(s, x, y, argmax, pick(s, max_group_3x3_s1, max_group_3x3_s2, max_group_any));
}

void max_pool_forward(const PoolShape& s, const float* x, float* y, int32_t* argmax) {
  max_pool_groups(s, x, y, argmax, max_group_wide);
}

void max_pool_backward(const PoolShape& s, const float* dy, const uint8_t* argmax, float* dx,
                       bool accumulate) {
  if (max_pool_gather_fit(s)) {
    max_pool_gather_backward(s, dy, argmax, dx, accumulate);
    return;
  }
  max_pool_scatter(s, dy, argmax, dx, accumulate);
}

void max_pool_backward(const PoolShape& s, const float* dy, const int32_t* argmax, float* dx,
                       bool accumulate) {
  max_pool_scatter(s, dy, argmax, dx, accumulate);
}

void avg_pool_forward(const PoolShape& s, const float* x, float* y) {
  CG_ASSERT(window_fits(s), "avg_pool loops: unsupported window");
  if (pool_rows_fit(s)) {
    avg_pool_rows(s, x, y);
    return;
  }
  const Padded g(s);
  const std::vector<float> inv = inverse_counts(s);
  const auto group = pick(s, avg_group_3x3_s1, avg_group_3x3_s2, avg_group_any);
  const int64_t in_size = s.h * s.w, out_size = s.oh * s.ow;
  for_groups(s, g, forward_scratch(s, g, 1), 0.0f, [&](int64_t p, int64_t count, float* m) {
    group(s, g, x + p * in_size, inv.data(), count, m, y + p * out_size);
  });
}

void avg_pool_backward(const PoolShape& s, const float* dy, float* dx, bool accumulate) {
  CG_ASSERT(window_fits(s), "avg_pool loops: unsupported window");
  if (pool_rows_fit(s)) {
    avg_pool_rows_backward(s, dy, dx, accumulate);
    return;
  }
  const Padded g(s);
  const std::vector<float> inv = inverse_counts(s);
  if (s.stride == 1 && 2 * s.pad == s.kernel - 1) {  // "same": the forward's passes on g
    const auto group = s.kernel == 3 ? avg_backward_same_3x3 : avg_backward_same_any;
    const int64_t size = s.h * s.w;
    for_groups(s, g, forward_scratch(s, g, 1), 0.0f, [&](int64_t p, int64_t count, float* m) {
      group(s, g, dy + p * size, inv.data(), count, m, dx + p * size, accumulate);
    });
    return;
  }
  if (avg_pool_s2_backward_fit(s)) {
    avg_pool_s2_backward(s, dy, inv.data(), dx, accumulate);
    return;
  }
  const auto group = pick(s, avg_backward_3x3_s1, avg_backward_3x3_s2, avg_backward_any);
  const int64_t in_size = s.h * s.w;
  // Scratch: dy / count (k rows of zero lanes, then ph / stride rows a plane), the
  // transposed passes' rows and padded planes.
  const int64_t rows_per_plane = g.ph / s.stride;
  const int64_t grad_size = (s.kernel + g.group * rows_per_plane) * g.hp;
  const int64_t rows_size = g.group * g.ph * (g.hp + s.kernel);
  const int64_t padded_size = g.group * g.ph * g.pw;
  for_groups(s, g, grad_size + rows_size + padded_size, 0.0f,
             [&](int64_t p, int64_t count, float* m) {
               float* grad = m;  // lanes other than the outputs' stay zero from the first fill
               for (int64_t b = 0; b < count; ++b)
                 for (int64_t oy = 0; oy < s.oh; ++oy) {
                   float* dst = grad + (s.kernel + b * rows_per_plane + oy) * g.hp;
                   const float* d = dy + ((p + b) * s.oh + oy) * s.ow;
                   const float* iv = inv.data() + oy * s.ow;
                   for (int64_t ox = 0; ox < s.ow; ++ox) dst[ox] = d[ox] * iv[ox];
                 }
               group(s, g, grad, count, m + grad_size, m + grad_size + rows_size, dx + p * in_size,
                     accumulate);
             });
}

}  // namespace cellgraph::cpu
