#include "engine/backends/cpu/conv_loops.h"

#include <omp.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "engine/backends/cpu/vector_loops.h"
#include "engine/error.h"
#include "engine/tensor/tensor.h"

namespace cellgraph::cpu {

// Depthwise loops: pitched planes for stride 1, clipped rows otherwise.

namespace {

// The outputs o in [first, second) whose input index o * stride + offset is in [0, in).
std::pair<int64_t, int64_t> valid_outputs(int64_t offset, int64_t in, int64_t out, int64_t stride) {
  const int64_t lo = offset >= 0 ? 0 : (stride - 1 - offset) / stride;
  const int64_t hi = in - 1 - offset < 0 ? 0 : std::min(out, (in - 1 - offset) / stride + 1);
  return {lo, std::max(lo, hi)};
}

// Calls tap_row(t, iy_row_start, oy, x0, x1, x_off) for every tap and output row whose input
// row exists; [x0, x1) are the output columns whose input column ox * stride + x_off exists.
template <typename TapRow>
void for_tap_rows(const DepthwiseShape& d, TapRow&& tap_row) {
  for (int64_t ky = 0; ky < d.kh; ++ky) {
    const int64_t y_off = ky * d.dilation - d.pad;
    const auto [y0, y1] = valid_outputs(y_off, d.h, d.oh, d.stride);
    for (int64_t kx = 0; kx < d.kw; ++kx) {
      const int64_t x_off = kx * d.dilation - d.pad;
      const auto [x0, x1] = valid_outputs(x_off, d.w, d.ow, d.stride);
      for (int64_t oy = y0; oy < y1; ++oy)
        tap_row(ky * d.kw + kx, (oy * d.stride + y_off) * d.w, oy, x0, x1, x_off);
    }
  }
}

// Stride 1: lay a plane out at the padded input's pitch pw = w + 2 pad, with dy's rows zero
// past column ow. Tap (ky, kx) then pairs dy element i with padded element
// i + (ky pw + kx) dil across the whole plane at once (the zero columns absorb the wrap into
// the next row): long dots (weights) or sums (data) across the whole plane instead of oh
// short clipped rows. With the clones: 3x (weights) and 2x (data) over clipped rows, for
// 5x5 on 16x16 and dilated 3x3 on 32x32 planes. A row of kw taps then goes in one pass
// (dot_taps, correlate_taps) instead of one per tap: the DARTS search step's depthwise
// loop time fell from 0.63 to 0.39 s (bench/profile_step, 2 threads). That pass reads dy
// up to one reach (kw - 1) dil before and after its extent; the scratch keeps zeros there.
struct Pitched {
  // One thread's scratch: padded plane, zero gap of one reach, pitched dy, zero tail.
  int64_t pw, ph, reach, grad_at, floats;
  explicit Pitched(const DepthwiseShape& d)
      : pw(d.w + 2 * d.pad),
        ph(d.h + 2 * d.pad),
        reach((d.kw - 1) * d.dilation),
        grad_at(ph * pw + reach),
        floats(grad_at + d.oh * pw + reach) {}
  bool fits(const DepthwiseShape& d) const {
    return d.stride == 1 && d.oh + (d.kh - 1) * d.dilation == ph &&
           d.ow + (d.kw - 1) * d.dilation == pw;
  }
  int64_t shift(const DepthwiseShape& d, int64_t ky, int64_t kx) const {
    return (ky * pw + kx) * d.dilation;
  }
};

// Runs body(plane, scratch) over all planes; each thread's scratch starts zeroed, and what
// a body leaves in the pitched-dy columns past ow is zero by construction.
template <typename Body>
void for_planes_pitched(const DepthwiseShape& d, const Pitched& s, Body&& body) {
  const Tensor scratch = Tensor::empty(Shape{omp_get_max_threads() * s.floats});
#pragma omp parallel
  {
    float* mine = scratch.data() + omp_get_thread_num() * s.floats;
    std::fill(mine, mine + s.floats, 0.0f);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < d.planes; ++p) body(p, mine);
  }
}

void pitch_grad(const DepthwiseShape& d, const Pitched& s, const float* grad, float* g) {
  for (int64_t oy = 0; oy < d.oh; ++oy) std::copy_n(grad + oy * d.ow, d.ow, g + oy * s.pw);
}

}  // namespace

bool depthwise_loops_fit(const DepthwiseShape& d) { return Pitched(d).fits(d); }

// y[p, oy, ox] = bias[c] + sum over taps of w[c, ky, kx] * x[p, oy + ky dil - pad, ...]: the
// plane copied into the padded pitch (the border stays zero from the first fill), then per
// kernel row one pass of correlate_taps over the whole pitched output, whose columns past
// ow are computed and dropped. correlate_taps reads backwards (out[i] += w[t] g[i - t step]),
// so it gets the row's taps reversed and g at the row's last tap.
void depthwise_forward(const DepthwiseShape& d, const float* x, const float* w, const float* bias,
                       float* y) {
  const Pitched s(d);
  CG_ASSERT(s.fits(d), "depthwise_forward: stride 1 and a padded extent only");
  const int64_t n = d.oh * s.pw;
  std::vector<float> reversed(size_t(d.channels * d.kh * d.kw));
  for (int64_t row = 0; row < d.channels * d.kh; ++row)
    std::reverse_copy(w + row * d.kw, w + (row + 1) * d.kw, reversed.begin() + row * d.kw);
  for_planes_pitched(d, s, [&](int64_t p, float* in) {
    float* acc = in + s.grad_at;
    const int64_t c = p % d.channels;
    const float* plane = x + p * d.h * d.w;
    for (int64_t iy = 0; iy < d.h; ++iy)
      std::copy_n(plane + iy * d.w, d.w, in + (iy + d.pad) * s.pw + d.pad);
    std::fill(acc, acc + n, bias != nullptr ? bias[c] : 0.0f);
    for (int64_t ky = 0; ky < d.kh; ++ky)
      correlate_taps(in + s.shift(d, ky, d.kw - 1), reversed.data() + (c * d.kh + ky) * d.kw, n,
                     d.dilation, int(d.kw), acc);
    float* out = y + p * d.oh * d.ow;
    for (int64_t oy = 0; oy < d.oh; ++oy) std::copy_n(acc + oy * s.pw, d.ow, out + oy * d.ow);
  });
}

// dx[p, iy, ix] = sum over taps of w[c, ky, kx] * dy[p, oy, ox], as a scatter of dy into dx.
void depthwise_backward_data(const DepthwiseShape& d, const float* dy, const float* w, float* dx) {
  const Pitched s(d);
  if (s.fits(d)) {
    for_planes_pitched(d, s, [&](int64_t p, float* acc) {
      float* g = acc + s.grad_at;
      const float* taps = w + (p % d.channels) * d.kh * d.kw;
      pitch_grad(d, s, dy + p * d.oh * d.ow, g);
      std::fill(acc, acc + s.grad_at, 0.0f);  // the plane and the gap before dy
      for (int64_t ky = 0; ky < d.kh; ++ky) {
        const int64_t row = s.shift(d, ky, 0);
        // Sums past the padded plane are never copied out; stopping there keeps the gap,
        // which this plane's later rows read as dy's leading zeros, zero.
        const int64_t n = std::min(d.oh * s.pw + s.reach, s.ph * s.pw - row);
        correlate_taps(g, taps + ky * d.kw, n, d.dilation, int(d.kw), acc + row);
      }
      float* out = dx + p * d.h * d.w;
      for (int64_t y = 0; y < d.h; ++y)
        std::copy_n(acc + (y + d.pad) * s.pw + d.pad, d.w, out + y * d.w);
    });
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < d.planes; ++p) {
    float* out = dx + p * d.h * d.w;
    const float* grad = dy + p * d.oh * d.ow;
    const float* taps = w + (p % d.channels) * d.kh * d.kw;
    std::fill(out, out + d.h * d.w, 0.0f);
    for_tap_rows(d, [&](int64_t t, int64_t row, int64_t oy, int64_t x0, int64_t x1, int64_t x_off) {
      const float tap = taps[t];
      for (int64_t ox = x0; ox < x1; ++ox)
        out[row + ox * d.stride + x_off] += tap * grad[oy * d.ow + ox];
    });
  }
}

// dw[c, ky, kx] = sum over n, oy, ox of dy[n, c, oy, ox] * x[n, c, iy, ix]: one float partial
// sum per plane and tap (at most a plane of terms), then a double sum over the batch.
void depthwise_backward_weights(const DepthwiseShape& d, const float* x, const float* dy,
                                float* dw) {
  const int64_t taps = d.kh * d.kw;
  const Tensor partial = Tensor::empty(Shape{d.planes * taps});
  float* part = partial.data();
  const Pitched s(d);
  if (s.fits(d)) {
    for_planes_pitched(d, s, [&](int64_t p, float* in) {
      float* g = in + s.grad_at;
      const int64_t n = d.oh * s.pw;
      const float* plane = x + p * d.h * d.w;
      for (int64_t y = 0; y < d.h; ++y)  // the zero border stays from the first fill
        std::copy_n(plane + y * d.w, d.w, in + (y + d.pad) * s.pw + d.pad);
      pitch_grad(d, s, dy + p * d.oh * d.ow, g);
      for (int64_t ky = 0; ky < d.kh; ++ky)
        dot_taps(g, in + s.shift(d, ky, 0), n, d.dilation, int(d.kw), part + p * taps + ky * d.kw);
    });
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < d.planes; ++p) {
      const float* in = x + p * d.h * d.w;
      const float* grad = dy + p * d.oh * d.ow;
      float* mine = part + p * taps;
      std::fill(mine, mine + taps, 0.0f);
      for_tap_rows(d,
                   [&](int64_t t, int64_t row, int64_t oy, int64_t x0, int64_t x1, int64_t x_off) {
                     float acc = 0.0f;
                     for (int64_t ox = x0; ox < x1; ++ox)
                       acc += grad[oy * d.ow + ox] * in[row + ox * d.stride + x_off];
                     mine[t] += acc;
                   });
    }
  }
  // A few thousand taps sum faster on one thread than a fork-join costs.
  const int64_t batch = d.planes / d.channels;
#pragma omp parallel for schedule(static) if (d.planes * taps > (int64_t{1} << 16))
  for (int64_t i = 0; i < d.channels * taps; ++i) {
    const int64_t c = i / taps, t = i % taps;
    double sum = 0;
    for (int64_t n = 0; n < batch; ++n) sum += part[(n * d.channels + c) * taps + t];
    dw[i] = float(sum);
  }
}

void pointwise_backward_weights(int64_t batch, int64_t in, int64_t out, int64_t plane,
                                const float* x, const float* dy, float* dw) {
  const int64_t weights = out * in;
  const int threads = omp_get_max_threads();
  // Zeroed up front: a team smaller than the maximum leaves some copies untouched.
  const Tensor partial = Tensor::zeros(Shape{threads * weights});
  const int64_t out4 = out / 4 * 4, in4 = in / 4 * 4;
#pragma omp parallel
  {
    float* mine = partial.data() + omp_get_thread_num() * weights;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < batch; ++n) {
      const float* xs = x + n * in * plane;
      const float* gs = dy + n * out * plane;
      for (int64_t o = 0; o < out; o += 4) {
        for (int64_t c = 0; c < in; c += 4) {
          if (o < out4 && c < in4) {
            dot_block4x4(gs + o * plane, xs + c * plane, plane, plane, mine + o * in + c, in);
            continue;
          }
          for (int64_t r = o; r < std::min(o + 4, out); ++r)
            for (int64_t k = c; k < std::min(c + 4, in); ++k)
              mine[r * in + k] += dot(gs + r * plane, xs + k * plane, plane);
        }
      }
    }
  }
  for (int64_t i = 0; i < weights; ++i) {
    double sum = 0;
    for (int t = 0; t < threads; ++t) sum += partial.data()[t * weights + i];
    dw[i] = float(sum);
  }
}

}  // namespace cellgraph::cpu
