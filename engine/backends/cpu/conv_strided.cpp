// Depthwise convs with stride 2 and more (a DARTS reduction cell's first depthwise conv of
// each separable and dilated candidate on the edges leaving the cell's inputs). oneDNN's
// jit_dw runs them on blocked layouts only: in a DARTS step the reorders of x into that
// layout and of y back took longer than the convolutions (0.17 s of reorders beside 0.12 s
// of jit_dw, ONEDNN_VERBOSE=profile_exec, 1 thread), and the data gradient with dilation
// and most weight gradients had no direct kernel at all (oneDNN only had im2col + GEMM for them).
//
// Here each plane is first split by column phase: with stride S, the zero-padded plane's
// columns S j + q go to phase q's row, j = 0, 1, .... Tap (ky, kx) of output row oy reads
// padded row oy S + ky dil at columns ox S + kx dil, which is phase (kx dil) mod S at
// columns ox + (kx dil) / S: one contiguous run of ow values. So the forward and the weight
// gradient are vector loops over whole output rows. The data gradient fills the phases of
// dx's padded plane by gathering (Gather: each vector of a phase row sums its taps in a
// register and is stored once; a first version scattered dy into the phases tap by tap and
// took about twice as long) and then interleaves them into dx.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/backends/cpu/conv_loops.h"
#include "engine/error.h"
#include "engine/tensor/tensor.h"

namespace cellgraph::cpu {

namespace {

// One plane's phases: `stride` planes of `rows` x `width` floats, covering every padded row
// and column a tap reads and every input pixel (whose gradient the data pass reads back).
struct Phases {
  int64_t stride, rows, width, floats;
  explicit Phases(const DepthwiseShape& d)
      : stride(d.stride),
        rows(std::max((d.oh - 1) * d.stride + (d.kh - 1) * d.dilation + 1, d.h + d.pad)),
        width(std::max(d.ow + (d.kw - 1) * d.dilation / d.stride,
                       (d.w + d.pad + d.stride - 1) / d.stride)),
        floats(stride * rows * width) {}
  // Phase q's row of input row y.
  int64_t row_of(const DepthwiseShape& d, int64_t q, int64_t y) const {
    return (q * rows + y + d.pad) * width;
  }
  // From one output row to the next in every phase.
  int64_t row_step() const { return stride * width; }
};

// Where tap t = ky kw + kx of output row 0 starts reading in the phases.
std::vector<int64_t> tap_offsets(const DepthwiseShape& d, const Phases& s) {
  std::vector<int64_t> at;
  for (int64_t ky = 0; ky < d.kh; ++ky)
    for (int64_t kx = 0; kx < d.kw; ++kx) {
      const int64_t c = kx * d.dilation;
      at.push_back(((c % s.stride) * s.rows + ky * d.dilation) * s.width + c / s.stride);
    }
  return at;
}

// Phase q's columns j in [first[q], last[q]) hold input columns j S + q - pad, the others
// padding; the same for every row, so computed once per call.
struct PhaseColumns {
  std::vector<int64_t> first, last;
  PhaseColumns(const DepthwiseShape& d, const Phases& s) {
    for (int64_t q = 0; q < s.stride; ++q) {
      const int64_t lo = d.pad - q, hi = d.w - 1 + d.pad - q;
      const int64_t j0 = lo > 0 ? (lo + s.stride - 1) / s.stride : 0;
      const int64_t j1 = hi >= 0 ? std::min(s.width, hi / s.stride + 1) : 0;
      first.push_back(j0);
      last.push_back(std::max(j0, j1));
    }
  }
};

// The data gradient as a gather: padded pixel (S i + a, S j + q) collects w[ky, kx] *
// dy[i - my, j - mx] over the taps with ky dil = S my + a and kx dil = S mx + q (my, mx >= 0),
// so every output vector is summed in a register and stored once. dy is first copied into a
// zero-margined plane (`top` rows above, `left` columns before, zeros past its end), so no
// tap needs bounds.
struct Gather {
  int64_t top, left, pitch, floats;
  // [a S + q]: each tap's index t = ky kw + kx and where it reads for (i, j) = (0, 0).
  std::vector<std::vector<std::pair<int64_t, int64_t>>> taps;
  Gather(const DepthwiseShape& d, const Phases& s, const PhaseColumns& columns)
      : top((d.kh - 1) * d.dilation / d.stride), left((d.kw - 1) * d.dilation / d.stride) {
    int64_t widest = d.ow;
    for (const int64_t j : columns.last) widest = std::max(widest, j);
    pitch = left + widest;
    floats = (top + std::max(d.oh, (d.pad + d.h - 1) / d.stride + 1)) * pitch;
    taps.resize(size_t(s.stride * s.stride));
    for (int64_t ky = 0; ky < d.kh; ++ky)
      for (int64_t kx = 0; kx < d.kw; ++kx) {
        const int64_t a = ky * d.dilation % d.stride, my = ky * d.dilation / d.stride;
        const int64_t q = kx * d.dilation % d.stride, mx = kx * d.dilation / d.stride;
        taps[size_t(a * s.stride + q)].emplace_back(ky * d.kw + kx, (top - my) * pitch + left - mx);
      }
  }
};

// What every plane of a call shares: the phases' geometry, the taps' offsets into them, the
// phases' column ranges and the data gradient's gather.
struct Plan {
  Phases s;
  std::vector<int64_t> at;
  PhaseColumns columns;
  Gather gather;
  explicit Plan(const DepthwiseShape& d)
      : s(d), at(tap_offsets(d, s)), columns(d, s), gather(d, s, columns) {}
};

// Plane x split into its phases. Only the columns that hold input pixels are written: the
// rest of the scratch is padding, zeroed once per thread (for_planes) and never written.
// S: the stride as a constant (2, below), or 0 to read it from the plan.
template <int S>
[[gnu::always_inline]] inline void split_phases(const DepthwiseShape& d, const Plan& plan,
                                                const float* x, float* out) {
  const Phases& s = plan.s;
  const int64_t step = S > 0 ? S : s.stride;
  for (int64_t q = 0; q < step; ++q) {
    const int64_t j0 = plan.columns.first[size_t(q)], j1 = plan.columns.last[size_t(q)];
    for (int64_t y = 0; y < d.h; ++y) {
      const float* src = x + y * d.w - d.pad + q;
      float* dst = out + s.row_of(d, q, y);
      for (int64_t j = j0; j < j1; ++j) dst[j] = src[j * step];
    }
  }
}

// W output columns in one vector (GCC's vector extension; a float for the columns left
// over). Spelled out per width: GCC drops vector_size on a dependent alias template.
template <int W>
struct VecOf;
template <>
struct VecOf<16> {
  using Type = float __attribute__((vector_size(64)));
};
template <>
struct VecOf<8> {
  using Type = float __attribute__((vector_size(32)));
};
template <>
struct VecOf<1> {
  using Type = float;
};
template <int W>
using Vec = typename VecOf<W>::Type;

template <int W>
[[gnu::always_inline]] inline void load(const float* p, Vec<W>& v) {
  std::memcpy(&v, p, sizeof v);
}
template <int W>
[[gnu::always_inline]] inline void store(float* p, const Vec<W>& v) {
  std::memcpy(p, &v, sizeof v);
}

// Stride 2: each input row's even and odd columns go to the two phases' rows as whole
// vectors, 32 columns (two loads, two shuffles, two stores) or 16 at a time: input column c
// lands in phase (c + pad) mod 2 at column (c + pad) div 2, so the even columns of a chunk
// at k are one run from k / 2 + pad / 2 in one phase and the odd ones one run from
// k / 2 + (pad + 1) / 2 in the other. GCC's loop for the general case gathered 8 columns
// at a time with a scalar tail, and took most of the strided forward's time. Rows of
// another width take the general loop.
template <>
[[gnu::always_inline]] inline void split_phases<2>(const DepthwiseShape& d, const Plan& plan,
                                                   const float* x, float* out) {
  if (d.w % 16 != 0) {
    split_phases<0>(d, plan, x, out);
    return;
  }
  const Phases& s = plan.s;
  const int64_t even_q = d.pad % 2, even_at = d.pad / 2, odd_at = (d.pad + 1) / 2;
  for (int64_t y = 0; y < d.h; ++y) {
    const float* src = x + y * d.w;
    float* even = out + s.row_of(d, even_q, y);
    float* odd = out + s.row_of(d, 1 - even_q, y);
    int64_t k = 0;
    for (; k + 32 <= d.w; k += 32) {
      Vec<16> a, b;
      load<16>(src + k, a);
      load<16>(src + k + 16, b);
      store<16>(even + k / 2 + even_at, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16,
                                                                18, 20, 22, 24, 26, 28, 30));
      store<16>(odd + k / 2 + odd_at, __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17,
                                                              19, 21, 23, 25, 27, 29, 31));
    }
    if (k < d.w) {  // 16 columns left
      Vec<16> a;
      load<16>(src + k, a);
      store<8>(even + k / 2 + even_at, __builtin_shufflevector(a, a, 0, 2, 4, 6, 8, 10, 12, 14));
      store<8>(odd + k / 2 + odd_at, __builtin_shufflevector(a, a, 1, 3, 5, 7, 9, 11, 13, 15));
    }
  }
}

// The phases added back into plane dx (or written there), the inverse of split_phases. For
// stride 2 a dx row alternates between two phase rows, A (the phase of column 0) and B:
// 8 floats of each interleave into 16 of dx by one shuffle (GCC's scalar loop stored one
// float at a time and was most of the data gradient's time).
template <int S>
[[gnu::always_inline]] inline void merge_phases(const DepthwiseShape& d, const Plan& plan,
                                                const float* phases, float* dx, bool add) {
  const Phases& s = plan.s;
  if constexpr (S == 2) {
    const int64_t qa = d.pad % 2, pairs = d.w / 2 / 8 * 8;
    for (int64_t y = 0; y < d.h; ++y) {
      const float* row_a = phases + s.row_of(d, qa, y) + d.pad / 2;
      const float* row_b = phases + s.row_of(d, 1 - qa, y) + (d.pad + 1) / 2;
      float* out = dx + y * d.w;
      for (int64_t k = 0; k < pairs; k += 8) {
        Vec<8> va, vb;
        load<8>(row_a + k, va);
        load<8>(row_b + k, vb);
        Vec<16> v =
            __builtin_shufflevector(va, vb, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
        if (add) {
          Vec<16> old;
          load<16>(out + 2 * k, old);
          v += old;
        }
        store<16>(out + 2 * k, v);
      }
      for (int64_t c = 2 * pairs; c < d.w; ++c) {
        const float v = (c % 2 == 0 ? row_a : row_b)[c / 2];
        out[c] = add ? out[c] + v : v;
      }
    }
    return;
  }
  const int64_t step = s.stride;
  for (int64_t q = 0; q < step; ++q) {
    const int64_t j0 = plan.columns.first[size_t(q)], j1 = plan.columns.last[size_t(q)];
    for (int64_t y = 0; y < d.h; ++y) {
      float* out = dx + y * d.w - d.pad + q;
      const float* src = phases + s.row_of(d, q, y);
      if (add) {
        for (int64_t j = j0; j < j1; ++j) out[j * step] += src[j];
      } else {
        for (int64_t j = j0; j < j1; ++j) out[j * step] = src[j];
      }
    }
  }
}

// Calls chunk(width constant, ox) over an output row: vectors of 16 columns, then 8, then
// single columns.
template <typename Chunk>
[[gnu::always_inline]] inline void for_row_chunks(int64_t ow, Chunk&& chunk) {
  int64_t ox = 0;
  for (; ox + 16 <= ow; ox += 16) chunk(std::integral_constant<int, 16>{}, ox);
  for (; ox + 8 <= ow; ox += 8) chunk(std::integral_constant<int, 8>{}, ox);
  for (; ox < ow; ++ox) chunk(std::integral_constant<int, 1>{}, ox);
}

// Output rows go in bands of 4: four independent sums per vector of columns, so the taps'
// multiply-adds do not wait on each other's results, and each weight is read once per band.
constexpr int64_t kBand = 4;

template <int S>
[[gnu::always_inline]] inline void forward_plane(const DepthwiseShape& d, const Plan& plan,
                                                 const float* x, const float* w, float bias,
                                                 float* phases, float* y, bool add) {
  split_phases<S>(d, plan, x, phases);
  const int64_t taps = d.kh * d.kw, step = plan.s.row_step();
  const int64_t* at = plan.at.data();
  const auto rows = [&](auto band, int64_t oy) __attribute__((always_inline)) {
    constexpr int64_t kRows = decltype(band)::value;
    const float* row = phases + oy * step;
    float* out = y + oy * d.ow;
    for_row_chunks(
        d.ow, [&](auto width, int64_t ox) __attribute__((always_inline)) {
          constexpr int kWidth = decltype(width)::value;
          Vec<kWidth> acc[kRows];
          for (int64_t r = 0; r < kRows; ++r) acc[r] = Vec<kWidth>{} + bias;
          for (int64_t t = 0; t < taps; ++t) {
            const float tap = w[t];
            for (int64_t r = 0; r < kRows; ++r) {
              Vec<kWidth> v;
              load<kWidth>(row + r * step + at[t] + ox, v);
              acc[r] += tap * v;
            }
          }
          for (int64_t r = 0; r < kRows; ++r) {
            if (add) {
              Vec<kWidth> old;
              load<kWidth>(out + r * d.ow + ox, old);
              acc[r] += old;
            }
            store<kWidth>(out + r * d.ow + ox, acc[r]);
          }
        });
  };
  int64_t oy = 0;
  for (; oy + kBand <= d.oh; oy += kBand) rows(std::integral_constant<int64_t, kBand>{}, oy);
  for (; oy < d.oh; ++oy) rows(std::integral_constant<int64_t, 1>{}, oy);
}

// The phase rows the input's rows fall on, gathered (Gather) in bands of kBand rows of one
// row phase a, then interleaved into dx.
template <int S>
[[gnu::always_inline]] inline void data_grad_plane(const DepthwiseShape& d, const Plan& plan,
                                                   const float* g, const float* w, float* phases,
                                                   float* dy_plane, float* dx, bool add) {
  const Gather& gather = plan.gather;
  const int64_t stride = S > 0 ? S : plan.s.stride;
  std::fill(dy_plane, dy_plane + gather.floats, 0.0f);
  for (int64_t oy = 0; oy < d.oh; ++oy)
    std::copy_n(g + oy * d.ow, d.ow, dy_plane + (gather.top + oy) * gather.pitch + gather.left);
  for (int64_t a = 0; a < stride; ++a) {
    // Padded rows stride i + a in [pad, pad + h), the ones dx reads back.
    const int64_t lo = d.pad - a, hi = d.pad + d.h - 1 - a;
    const int64_t i0 = lo > 0 ? (lo + stride - 1) / stride : 0;
    const int64_t i1 = hi >= 0 ? hi / stride + 1 : 0;
    for (int64_t q = 0; q < stride; ++q) {
      const auto& taps = gather.taps[size_t(a * stride + q)];
      const int64_t j0 = plan.columns.first[size_t(q)], j1 = plan.columns.last[size_t(q)];
      float* out = phases + (q * plan.s.rows + a) * plan.s.width;
      const auto rows = [&](auto band, int64_t i) __attribute__((always_inline)) {
        constexpr int64_t kRows = decltype(band)::value;
        const float* src = dy_plane + i * gather.pitch + j0;
        float* dst = out + i * stride * plan.s.width + j0;
        for_row_chunks(
            j1 - j0, [&](auto width, int64_t j) __attribute__((always_inline)) {
              constexpr int kWidth = decltype(width)::value;
              Vec<kWidth> acc[kRows] = {};
              for (const auto& [t, at] : taps) {
                const float tap = w[t];
                for (int64_t r = 0; r < kRows; ++r) {
                  Vec<kWidth> v;
                  load<kWidth>(src + r * gather.pitch + at + j, v);
                  acc[r] += tap * v;
                }
              }
              for (int64_t r = 0; r < kRows; ++r)
                store<kWidth>(dst + r * stride * plan.s.width + j, acc[r]);
            });
      };
      int64_t i = i0;
      for (; i + kBand <= i1; i += kBand) rows(std::integral_constant<int64_t, kBand>{}, i);
      for (; i < i1; ++i) rows(std::integral_constant<int64_t, 1>{}, i);
    }
  }
  merge_phases<S>(d, plan, phases, dx, add);
}

// out[t] = sum over oy, ox of g[oy, ox] * x's tap t, one tap at a time over the whole
// plane (both L1-resident): kBand vector sums per width (rows oy mod 4, independent
// chains), added together and across their lanes once per tap.
template <int S>
[[gnu::always_inline]] inline void weight_grad_plane(const DepthwiseShape& d, const Plan& plan,
                                                     const float* x, const float* g, float* phases,
                                                     float* out) {
  split_phases<S>(d, plan, x, phases);
  const int64_t taps = d.kh * d.kw, step = plan.s.row_step();
  for (int64_t t = 0; t < taps; ++t) {
    Vec<16> wide[kBand] = {};
    Vec<8> half[kBand] = {};
    float single[kBand] = {};
    const auto rows = [&](auto band, int64_t oy) __attribute__((always_inline)) {
      constexpr int64_t kRows = decltype(band)::value;
      const float* src = phases + oy * step + plan.at[size_t(t)];
      const float* grad = g + oy * d.ow;
      for_row_chunks(
          d.ow, [&](auto width, int64_t ox) __attribute__((always_inline)) {
            constexpr int kWidth = decltype(width)::value;
            for (int64_t r = 0; r < kRows; ++r) {
              Vec<kWidth> a, b;
              load<kWidth>(grad + r * d.ow + ox, a);
              load<kWidth>(src + r * step + ox, b);
              if constexpr (kWidth == 16) wide[r] += a * b;
              if constexpr (kWidth == 8) half[r] += a * b;
              if constexpr (kWidth == 1) single[r] += a * b;
            }
          });
    };
    int64_t oy = 0;
    for (; oy + kBand <= d.oh; oy += kBand) rows(std::integral_constant<int64_t, kBand>{}, oy);
    for (; oy < d.oh; ++oy) rows(std::integral_constant<int64_t, 1>{}, oy);
    const Vec<16> w16 = (wide[0] + wide[1]) + (wide[2] + wide[3]);
    const Vec<8> w8 = (half[0] + half[1]) + (half[2] + half[3]);
    float sum = (single[0] + single[1]) + (single[2] + single[3]);
    if (d.ow >= 16)
      for (int l = 0; l < 16; ++l) sum += w16[l];
    if (d.ow % 16 >= 8)
      for (int l = 0; l < 8; ++l) sum += w8[l];
    out[t] = sum;
  }
}

// The planes' functions for stride 2 and for any stride, each built for AVX-512, AVX2 and
// the default target (as in conv_loops.cpp).
#define CG_STRIDED_PLANES(suffix, S)                                                            \
  [[gnu::target_clones("avx512f", "avx2", "default")]] void forward_##suffix(                   \
      const DepthwiseShape& d, const Plan& plan, const float* x, const float* w, float bias,    \
      float* phases, float* y, bool add) {                                                      \
    forward_plane<S>(d, plan, x, w, bias, phases, y, add);                                      \
  }                                                                                             \
  [[gnu::target_clones("avx512f", "avx2", "default")]] void data_grad_##suffix(                 \
      const DepthwiseShape& d, const Plan& plan, const float* g, const float* w, float* phases, \
      float* dy_plane, float* dx, bool add) {                                                   \
    data_grad_plane<S>(d, plan, g, w, phases, dy_plane, dx, add);                               \
  }                                                                                             \
  [[gnu::target_clones("avx512f", "avx2", "default")]] void weight_grad_##suffix(               \
      const DepthwiseShape& d, const Plan& plan, const float* x, const float* g, float* phases, \
      float* out) {                                                                             \
    weight_grad_plane<S>(d, plan, x, g, phases, out);                                           \
  }
CG_STRIDED_PLANES(stride2, 2)
CG_STRIDED_PLANES(any_stride, 0)
#undef CG_STRIDED_PLANES

// Runs body(plane, scratch) over all planes, each thread with `floats` of scratch, zeroed
// once before its first plane.
template <typename Body>
void for_planes(const DepthwiseShape& d, int64_t floats, Body&& body) {
  const Tensor scratch = Tensor::empty(Shape{omp_get_max_threads() * floats});
#pragma omp parallel
  {
    float* mine = scratch.data() + omp_get_thread_num() * floats;
    std::fill(mine, mine + floats, 0.0f);  // the phases' padding (split_phases)
#pragma omp for schedule(static)
    for (int64_t p = 0; p < d.planes; ++p) body(p, mine);
  }
}

}  // namespace

bool depthwise_strided_fit(const DepthwiseShape& d) {
  return d.stride >= 2 && (d.oh - 1) * d.stride + (d.kh - 1) * d.dilation < d.h + 2 * d.pad &&
         (d.ow - 1) * d.stride + (d.kw - 1) * d.dilation < d.w + 2 * d.pad;
}

void depthwise_strided_forward(const DepthwiseShape& d, const float* x, const float* w,
                               const float* bias, float* y, bool accumulate) {
  CG_ASSERT(depthwise_strided_fit(d), "strided depthwise loops: stride 2 or more");
  const Plan plan(d);
  const auto plane = d.stride == 2 ? forward_stride2 : forward_any_stride;
  for_planes(d, plan.s.floats, [&](int64_t p, float* scratch) {
    const int64_t c = p % d.channels;
    plane(d, plan, x + p * d.h * d.w, w + c * d.kh * d.kw, bias != nullptr ? bias[c] : 0.0f,
          scratch, y + p * d.oh * d.ow, accumulate);
  });
}

void depthwise_strided_backward_data(const DepthwiseShape& d, const float* dy, const float* w,
                                     float* dx, bool accumulate) {
  CG_ASSERT(depthwise_strided_fit(d), "strided depthwise loops: stride 2 or more");
  const Plan plan(d);
  const auto plane = d.stride == 2 ? data_grad_stride2 : data_grad_any_stride;
  for_planes(d, plan.s.floats + plan.gather.floats, [&](int64_t p, float* scratch) {
    const int64_t c = p % d.channels;
    plane(d, plan, dy + p * d.oh * d.ow, w + c * d.kh * d.kw, scratch, scratch + plan.s.floats,
          dx + p * d.h * d.w, accumulate);
  });
}

void depthwise_strided_weight_partials(const DepthwiseShape& d, const float* x, const float* dy,
                                       float* partial) {
  CG_ASSERT(depthwise_strided_fit(d), "strided depthwise loops: stride 2 or more");
  const Plan plan(d);
  const int64_t taps = d.kh * d.kw;
  const auto plane = d.stride == 2 ? weight_grad_stride2 : weight_grad_any_stride;
  for_planes(d, plan.s.floats, [&](int64_t p, float* scratch) {
    plane(d, plan, x + p * d.h * d.w, dy + p * d.oh * d.ow, scratch, partial + p * taps);
  });
}

}  // namespace cellgraph::cpu
