// batch_norm: our own loops, parallel over channels or planes (the training backward over
// planes, plane_major_backward, or a channel at a time where a channel fits L2: Channel at
// once, below). oneDNN 2.6 serves plain NCHW batch norm only with its
// generic ncsp implementation, which measured several times slower than these loops
// in a DARTS search step (bench/profile_step). Training normalises with the batch
// statistics (biased variance) and then updates the running statistics in place with
// PyTorch's rule; eval normalises with the running statistics. The forward saves the
// statistics it normalised with, [mean, variance], so the backward needs neither the
// running tensors nor a recomputation. [N,C] input is treated as [N,C,1,1].
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/backends/cpu/kernels.h"
#include "engine/error.h"

namespace cellgraph::cpu {

namespace {
// Layout of x as [outer = N, channels, inner = H*W].
struct Planes {
  int64_t batch, channels, inner;
  explicit Planes(const Shape& x)
      : batch(x[0]), channels(x[1]), inner(x.rank() == 4 ? x[2] * x[3] : 1) {}
  int64_t per_channel() const { return batch * inner; }
  int64_t offset(int64_t n, int64_t c) const { return (n * channels + c) * inner; }
};

// running = (1 - m) * running + m * batch, with the variance made unbiased (n / (n - 1)).
// The running tensors are the op's inputs: the update is visible to their owner.
void update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                    const Tensor& var, float momentum, int64_t n) {
  const Tensor rm = running_mean.contiguous();
  const Tensor rv = running_var.contiguous();
  const double unbias = double(n) / double(n - 1);
  for (int64_t c = 0; c < mean.numel(); ++c) {
    rm.data()[c] = (1.0f - momentum) * rm.data()[c] + momentum * mean.data()[c];
    rv.data()[c] = (1.0f - momentum) * rv.data()[c] + momentum * float(var.data()[c] * unbias);
  }
  // Strided running tensors were updated in a copy; write it back.
  if (!rm.shares_storage_with(running_mean)) running_mean.copy_from(rm);
  if (!rv.shares_storage_with(running_var)) running_var.copy_from(rv);
}

// The loops over one channel's planes (the channel's H*W values in each of the N images,
// `stride` apart). As in vector_loops.cpp, AVX-512 / AVX2 clones are chosen when the
// library loads since the project builds without -march. The reductions keep double
// accumulators in vector registers (GCC's vector extension) across all the channel's
// planes and add their lanes once at the end: the earlier per-plane `omp simd` reductions
// added their lanes at the end of every plane, which on 8 x 8 planes cost about as much as
// the sums (batch norm on [64, 64, 8, 8], 1 thread, ms a call, forward / backward: 0.109 / 0.157 ->
// 0.070 / 0.119; on [64, 32, 16, 16] and [64, 16, 32, 32], bound by memory traffic, no
// change measured).
//
// Prefetching: a channel's values are one plane per image, `stride` floats apart, and a plane
// of 32 x 32 floats is one 4 KiB page: the hardware prefetchers stop at page boundaries, so
// each plane started on misses. The sums fetch the next image's plane by hand as they go
// (ms a call, [64, 16, 32, 32], 1 thread, best of 40, two alternated runs, forward /
// backward: 0.34-0.35 / 0.72-0.75 -> 0.27-0.29 / 0.62-0.69 on a tensor the cache holds,
// 0.59-0.60 / 0.84-0.86 -> 0.50-0.52 / 0.72-0.78 rotating through twelve that it does not;
// [64, 32, 16, 16] forward 0.33-0.34 -> 0.25 on the rotating ones).
//
// Channel at once: training reads each tensor twice, the forward x for the statistics and
// then to normalise it, the backward dy and x for the sums and then for dx. Taken a whole
// tensor at a time, a [64, 16, 32, 32] tensor (4 MiB) is out of L2 by the second pass and
// each pass streams from L3, which one core of an Ice Lake Xeon reads at 9-10 GB/s (a
// throwaway loop over twelve 4 MiB tensors in turn). A channel at a time (one thread does
// both passes of its channels) the second pass finds the channel in L2. Where: planes of
// 256 values and more (on 8 x 8 planes the whole tensor fits L2 anyway, and normalising a
// channel's 64-value planes one by one was slower: [64, 64, 8, 8] 0.27-0.30 -> 0.39-0.41 ms
// a call), and a channel's tensors (x; dy and x) at most 512 KiB, half the smaller L2 we
// run on (Zen 4's 1 MiB); past that the whole-tensor passes, unmeasured there. The sums
// must prefetch the channel's next plane, one image on (channel_grad_sums' stride): a first
// version, called plane by plane with the plane-major stride, fetched the next plane in
// memory, another channel's, and on 32 x 32 planes lost to the plane-major backward.
// ISTA-NAS steps on the DARTS network (Ice Lake, bench/profile_step --shapes, 1 thread,
// three runs alternated with the tree before, ms a call): backward [64, 16, 32, 32] 1.316 /
// 1.375 / 1.490 -> 1.136 / 1.221 / 1.283, [64, 32, 32, 32] 3.21-3.32 -> 2.69-2.87, [64, 48,
// 32, 32] 4.98-5.15 -> 4.02-4.63; forward [64, 16, 32, 32] 0.904 / 0.952 / 0.972 -> 0.818 /
// 0.852 / 0.956, [64, 48, 32, 32] 3.28-3.66 -> 2.71-3.10, [64, 64, 16, 16] 1.07-1.08 ->
// 0.96-1.05; on 16 x 16 planes at 32 channels within the runs' spread (and 9-12% faster in
// an earlier set). Batch norm a step 0.277 / 0.287 / 0.302 -> 0.267 / 0.273 / 0.296 s, and
// with the order of the runs reversed 0.308 / 0.294 / 0.271 -> 0.266 / 0.258 / 0.260; at 2
// threads 0.210 / 0.157 / 0.156 -> 0.170 / 0.148 / 0.150 and 0.157 / 0.168 / 0.171 -> 0.142
// / 0.141 / 0.157. Not yet timed on Zen 4.
constexpr int64_t kChannelAtOnceInner = 256;
constexpr int64_t kChannelAtOnceBytes = 512 * 1024;

// Channel at once for passes over `tensors` tensors of x's layout. Fewer channels than
// threads keep the whole-tensor passes, which split planes, not channels, among threads.
bool channel_at_once(const Planes& p, int64_t tensors) {
  return p.inner >= kChannelAtOnceInner &&
         tensors * p.batch * p.inner * int64_t(sizeof(float)) <= kChannelAtOnceBytes &&
         p.channels >= omp_get_max_threads();
}

using Floats = float __attribute__((vector_size(32)));
using Doubles = double __attribute__((vector_size(64)));
constexpr int64_t kLanes = 8;

// p[0, 8) in double; `out` by reference, since a vector passed or returned by value warns
// (-Wpsabi) in the code built for the default target.
[[gnu::always_inline]] inline void load_wide(const float* p, Doubles& out) {
  Floats v;
  std::memcpy(&v, p, sizeof v);
  out = __builtin_convertvector(v, Doubles);
}
// (p[0, 8) - mean) * inv, in float as the per-element loops compute it, then in double.
[[gnu::always_inline]] inline void load_xhat_wide(const float* p, float mean, float inv,
                                                  Doubles& out) {
  Floats v;
  std::memcpy(&v, p, sizeof v);
  v = (v - mean) * inv;
  out = __builtin_convertvector(v, Doubles);
}
[[gnu::always_inline]] inline double lanes_sum(const Doubles& v) {
  double s = 0;
  for (int l = 0; l < int(kLanes); ++l) s += v[l];
  return s;
}

// A channel's sums in double: of its values and their squares, and with a gradient g of the
// same layout (kWithG) of g and g * x too, in the same pass. The sums of x are the same
// additions in the same order either way, so batch_norm_forward and vec::batch_norm_dot
// take bit-identical statistics. (channel_grad_sums of x against itself at mean 0 and inv 1
// gives the sums of x, but reads and widens x twice: the forward took 0.093 instead of 0.069
// ms on [64, 64, 8, 8], 1 thread.)
struct Moments {
  double sum = 0, sq = 0, sum_g = 0, sum_gx = 0;
};
template <bool kWithG>
[[gnu::always_inline]] inline Moments moments_pass(const float* x, const float* g, int64_t batch,
                                                   int64_t stride, int64_t inner) {
  Doubles s0{}, s1{}, q0{}, q1{}, g0{}, g1{}, d0{}, d1{};
  double s = 0, q = 0, t = 0, d = 0;
  const int64_t pairs = inner / (2 * kLanes) * (2 * kLanes);
  for (int64_t b = 0; b < batch; ++b) {
    const float* xr = x + b * stride;
    const float* gr = kWithG ? g + b * stride : nullptr;
    for (int64_t i = 0; i < pairs; i += 2 * kLanes) {
      __builtin_prefetch(xr + stride + i);  // the next image's planes (Prefetching, above)
      Doubles a, c;
      load_wide(xr + i, a);
      load_wide(xr + i + kLanes, c);
      s0 += a;
      s1 += c;
      q0 += a * a;
      q1 += c * c;
      if constexpr (kWithG) {
        __builtin_prefetch(gr + stride + i);
        Doubles ga, gc;
        load_wide(gr + i, ga);
        load_wide(gr + i + kLanes, gc);
        g0 += ga;
        g1 += gc;
        d0 += ga * a;
        d1 += gc * c;
      }
    }
    for (int64_t i = pairs; i < inner; ++i) {
      s += double(xr[i]);
      q += double(xr[i]) * double(xr[i]);
      if constexpr (kWithG) {
        t += double(gr[i]);
        d += double(gr[i]) * double(xr[i]);
      }
    }
  }
  Moments m;
  m.sum = lanes_sum(s0 + s1) + s;
  m.sq = lanes_sum(q0 + q1) + q;
  if constexpr (kWithG) {
    m.sum_g = lanes_sum(g0 + g1) + t;
    m.sum_gx = lanes_sum(d0 + d1) + d;
  }
  return m;
}

// The channel's sums of x alone (batch_norm_forward), and with g (vec::batch_norm_dot).
[[gnu::target_clones("avx512f", "avx2", "default")]] Moments channel_moments(const float* x,
                                                                             int64_t batch,
                                                                             int64_t stride,
                                                                             int64_t inner) {
  return moments_pass<false>(x, nullptr, batch, stride, inner);
}
[[gnu::target_clones("avx512f", "avx2", "default")]] Moments channel_moments_dot(
    const float* x, const float* g, int64_t batch, int64_t stride, int64_t inner) {
  return moments_pass<true>(x, g, batch, stride, inner);
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void plane_affine(const float* in, float* out,
                                                                       int64_t n, float scale,
                                                                       float shift) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale + shift;
}

// sum dy and sum dy * xhat over the channel, xhat = (x - mean) * inv.
[[gnu::target_clones("avx512f", "avx2", "default")]] void channel_grad_sums(
    const float* g, const float* xs, int64_t batch, int64_t stride, int64_t inner, float mean,
    float inv, double& sum_dy, double& sum_dy_xhat) {
  Doubles s0{}, s1{}, t0{}, t1{};
  double s = 0, t = 0;
  const int64_t pairs = inner / (2 * kLanes) * (2 * kLanes);
  for (int64_t b = 0; b < batch; ++b) {
    const float* gr = g + b * stride;
    const float* xr = xs + b * stride;
    for (int64_t i = 0; i < pairs; i += 2 * kLanes) {
      __builtin_prefetch(gr + stride + i);  // the next image's planes (Prefetching, above)
      __builtin_prefetch(xr + stride + i);
      Doubles ga, gc, xa, xc;
      load_wide(gr + i, ga);
      load_wide(gr + i + kLanes, gc);
      load_xhat_wide(xr + i, mean, inv, xa);
      load_xhat_wide(xr + i + kLanes, mean, inv, xc);
      s0 += ga;
      s1 += gc;
      t0 += ga * xa;
      t1 += gc * xc;
    }
    for (int64_t i = pairs; i < inner; ++i) {
      s += double(gr[i]);
      t += double(gr[i]) * double((xr[i] - mean) * inv);
    }
  }
  sum_dy = lanes_sum(s0 + s1) + s;
  sum_dy_xhat = lanes_sum(t0 + t1) + t;
}

// Training: dx = g_inv * (dy - mean_dy - xhat * mean_dy_xhat) over the channel.
[[gnu::target_clones("avx512f", "avx2", "default")]] void channel_grad_input(
    const float* g, const float* xs, float* d, int64_t batch, int64_t stride, int64_t inner,
    float mean, float inv, float g_inv, float mean_dy, float mean_dy_xhat) {
  for (int64_t b = 0; b < batch; ++b) {
    const float* gr = g + b * stride;
    const float* xr = xs + b * stride;
    float* dr = d + b * stride;
#pragma omp simd
    for (int64_t i = 0; i < inner; ++i) {
      const float xhat = (xr[i] - mean) * inv;
      dr[i] = g_inv * (gr[i] - mean_dy - xhat * mean_dy_xhat);
    }
  }
}

// Channel c's mean and biased variance from its sum and sum of squares.
void store_statistics(const Moments& sums, const Planes& p, int64_t c, float* mean, float* var) {
  const double m = sums.sum / double(p.per_channel());
  mean[c] = float(m);
  var[c] = float(std::max(sums.sq / double(p.per_channel()) - m * m, 0.0));
}

// Channel c's mean and biased variance, accumulated in double.
void channel_statistics(const float* x, const Planes& p, int64_t c, float* mean, float* var) {
  const Moments m = channel_moments(x + p.offset(0, c), p.batch, p.channels * p.inner, p.inner);
  store_statistics(m, p, c, mean, var);
}

// Channel c normalised as one multiply-add, y = x * scale + shift: the forward writes these
// values and vec::batch_norm_dot multiplies them by g, so both take them from here. gamma
// and beta null: no affine.
struct ChannelAffine {
  float scale, shift;
};
ChannelAffine channel_affine(const float* mean, const float* var, const float* gamma,
                             const float* beta, int64_t c, float eps) {
  const float inv = 1.0f / std::sqrt(var[c] + eps);
  const float scale = gamma != nullptr ? gamma[c] * inv : inv;
  return {scale, (beta != nullptr ? beta[c] : 0.0f) - mean[c] * scale};
}

// Batch statistics need two values per channel or more.
void require_batch_values(const Planes& p, const Tensor& x) {
  if (p.per_channel() < 2)
    throw error("batch_norm: training needs more than one value per channel, got input ",
                x.shape().str());
}

void batch_norm_forward(const ForwardCall& call) {
  const auto& a = std::get<BatchNormAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  const bool affine = call.inputs[1].defined();
  const Planes p(x.shape());
  const int64_t n = p.per_channel();
  if (a.training) require_batch_values(p, x);
  // Eval reads the running statistics; copied when saved, since an optimizer or a later
  // training step may change them before this node's backward runs.
  Tensor mean, var;
  if (a.training) {
    mean = Tensor::empty({p.channels});
    var = Tensor::empty({p.channels});
  } else {
    mean = call.saved ? call.inputs[3].clone() : call.inputs[3].contiguous();
    var = call.saved ? call.inputs[4].clone() : call.inputs[4].contiguous();
  }
  const Tensor gamma = affine ? call.inputs[1].contiguous() : Tensor();
  const Tensor beta = affine ? call.inputs[2].contiguous() : Tensor();
  const float* gamma_data = affine ? gamma.data() : nullptr;
  const float* beta_data = affine ? beta.data() : nullptr;
  const float* src = x.data();
  float* dst = call.outputs[0].data();
  if (a.training && channel_at_once(p, 1)) {
    // Each channel normalised right after its statistics, by the thread that took them:
    // the channel's planes are then read again from L2 rather than L3 (Channel at once,
    // above). The same operations on the same values as below: the same bits.
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < p.channels; ++c) {
      channel_statistics(src, p, c, mean.data(), var.data());
      const ChannelAffine f =
          channel_affine(mean.data(), var.data(), gamma_data, beta_data, c, a.eps);
      for (int64_t b = 0; b < p.batch; ++b)
        plane_affine(src + p.offset(b, c), dst + p.offset(b, c), p.inner, f.scale, f.shift);
    }
  } else {
    // Statistics and normalisation in one parallel region (the `for`s' barrier between
    // them): every region wakes the threads, ~50 us each under OMP_WAIT_POLICY=passive at 2
    // threads (docs/architecture.md, Threads), and a DARTS step runs ~1,900 batch norm
    // forwards.
#pragma omp parallel
    {
      if (a.training) {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < p.channels; ++c)
          channel_statistics(src, p, c, mean.data(), var.data());
      }
#pragma omp for collapse(2) schedule(static)
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t c = 0; c < p.channels; ++c) {
          const ChannelAffine f =
              channel_affine(mean.data(), var.data(), gamma_data, beta_data, c, a.eps);
          plane_affine(src + p.offset(b, c), dst + p.offset(b, c), p.inner, f.scale, f.shift);
        }
      }
    }
  }
  if (a.training) update_running(call.inputs[3], call.inputs[4], mean, var, a.momentum, n);
  if (call.saved) {
    call.saved->push_back(mean);
    call.saved->push_back(var);
  }
}

}  // namespace

// vec::batch_norm_dot: batch_norm_forward's training statistics and running update, and the
// sum of g * (x * scale + shift) over each channel, where a batch norm would write the
// values: one pass over x and g, the channel's dot taken from its sums as scale * sum(g x)
// + shift * sum(g) with batch_norm_forward's float scale and shift. The normalised values
// are thus not rounded to float before their products (<g, batch_norm(x)> differs from this
// by that rounding), and the channels' dots are added in channel order: the same result for
// any thread count. A DARTS-space NASP step dots ~420 closing batch norms so (its
// forward-only candidates' outputs, up to 4 MiB each).
//
// Before, the dot was a second pass, reading x again after the statistics and multiplying
// each normalised value, computed in float, by g. One pass instead (ms a call, batch 64, 14
// inputs in turn against one g, best of 9, two-pass -> one-pass): 1 thread 0.617 -> 0.451 on
// 16 x 32 x 32, 0.335 -> 0.239 on 32 x 16 x 16, 0.203 -> 0.130 on 64 x 8 x 8; 2 threads
// 0.425 -> 0.304, 0.279 -> 0.195, 0.214 -> 0.120. The second pass had replaced a batch norm
// writing its output and vec::dot reading it (bench/profile_step --algo nasp --steps 3, s a
// step, batch norm forwards + the time outside kernels, where the dots were counted): 1
// thread 0.252 / 0.246 / 0.247 / 0.248 -> 0.229 / 0.230 / 0.232 / 0.223; 2 threads 0.249 /
// 0.253 / 0.246 -> 0.210 / 0.216 / 0.210.
double batch_norm_forward_dot(const Tensor& x_in, const Tensor& gamma_in, const Tensor& beta_in,
                              const Tensor& running_mean, const Tensor& running_var, float momentum,
                              float eps, const Tensor& g_in) {
  const Tensor x = x_in.contiguous();
  const Tensor g = g_in.contiguous();
  const bool affine = gamma_in.defined();
  const Planes p(x.shape());
  require_batch_values(p, x);
  const Tensor mean = Tensor::empty({p.channels});
  const Tensor var = Tensor::empty({p.channels});
  const Tensor gamma = affine ? gamma_in.contiguous() : Tensor();
  const Tensor beta = affine ? beta_in.contiguous() : Tensor();
  const float* gamma_data = affine ? gamma.data() : nullptr;
  const float* beta_data = affine ? beta.data() : nullptr;
  std::vector<double> dots(size_t(p.channels), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.channels; ++c) {
    const Moments m = channel_moments_dot(x.data() + p.offset(0, c), g.data() + p.offset(0, c),
                                          p.batch, p.channels * p.inner, p.inner);
    store_statistics(m, p, c, mean.data(), var.data());
    const ChannelAffine f = channel_affine(mean.data(), var.data(), gamma_data, beta_data, c, eps);
    dots[size_t(c)] = double(f.scale) * m.sum_gx + double(f.shift) * m.sum_g;
  }
  update_running(running_mean, running_var, mean, var, momentum, p.per_channel());
  double sum = 0;
  for (const double dot : dots) sum += dot;
  return sum;
}

namespace {

// Channel c's constants in the backward: x̂ = (x - x_mean) * x_inv, read from x or from the
// kept output x̂ itself (mean 0, inv 1), and dx's factor g_inv = gamma * inv * s.
struct ChannelGrad {
  float x_mean, x_inv, g_inv;
};
ChannelGrad channel_grad(const float* mean, const float* var, const float* gamma, bool from_output,
                         float eps, double s, int64_t c) {
  const float inv = 1.0f / std::sqrt(var[c] + eps);
  return {from_output ? 0.0f : mean[c], from_output ? 1.0f : inv,
          (gamma != nullptr ? gamma[c] : 1.0f) * inv * float(s)};
}

// The training backward plane by plane rather than channel by channel: both passes walk
// the tensors in memory order, where channel by channel each plane (C planes from the
// last, its own page) started on misses, and the dx pass had no prefetch. The sums are
// taken per plane and added per channel in image order (deterministic for any thread
// count). [N, C] and tiny planes stay channel by channel. Measured in a DARTS step
// (bench/profile_step --algo darts --batch 64 --steps 2, OMP_WAIT_POLICY=passive, runs
// alternated with the channel loops, batch norm backward s a step): 1 thread 0.698 /
// 0.790 -> 0.520 / 0.627; 2 threads 0.431 / 0.422 / 0.527 / 0.578 / 0.713 -> 0.453 /
// 0.432 / 0.444 / 0.370 / 0.493 (a first version with four barriers in the region took
// 0.536 / 0.467 -> 0.669 / 0.578 there: passive threads sleep at each). The forward's
// statistics taken the same way measured no faster at 1 thread (0.354 / 0.337 -> 0.394 /
// 0.366 s), as its channel sums prefetch each next plane (channel_moments).
constexpr int64_t kPlaneMajorInner = 16;

void plane_major_backward(const Planes& p, const float* dy, const float* x, const float* mean,
                          const float* var, bool from_output, float eps, const float* gamma,
                          double s, const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta) {
  const int64_t planes = p.batch * p.channels;
  std::vector<double> sum_dy(static_cast<size_t>(planes)), sum_dy_xhat(sum_dy.size());
  const double count = double(p.per_channel());
  // One barrier (after the sums) in the region: every thread then adds up each channel's
  // sums itself, a few hundred additions, rather than wait at a second.
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t q = 0; q < planes; ++q) {
      const ChannelGrad k = channel_grad(mean, var, gamma, from_output, eps, s, q % p.channels);
      channel_grad_sums(dy + q * p.inner, x + q * p.inner, 1, p.inner, p.inner, k.x_mean, k.x_inv,
                        sum_dy[size_t(q)], sum_dy_xhat[size_t(q)]);
    }
    std::vector<double> sd(static_cast<size_t>(p.channels), 0.0), sdx(sd.size(), 0.0);
    for (int64_t b = 0; b < p.batch; ++b)
      for (int64_t c = 0; c < p.channels; ++c) {
        sd[size_t(c)] += sum_dy[size_t(b * p.channels + c)];
        sdx[size_t(c)] += sum_dy_xhat[size_t(b * p.channels + c)];
      }
#pragma omp for schedule(static) nowait
    for (int64_t c = 0; c < p.channels; ++c) {
      if (dgamma.defined()) dgamma.data()[c] = float(s * sdx[size_t(c)]);
      if (dbeta.defined()) dbeta.data()[c] = float(s * sd[size_t(c)]);
    }
    if (dx.defined()) {
#pragma omp for schedule(static) nowait
      for (int64_t q = 0; q < planes; ++q) {
        const int64_t c = q % p.channels;
        const ChannelGrad k = channel_grad(mean, var, gamma, from_output, eps, s, c);
        channel_grad_input(dy + q * p.inner, x + q * p.inner, dx.data() + q * p.inner, 1, p.inner,
                           p.inner, k.x_mean, k.x_inv, k.g_inv, float(sd[size_t(c)] / count),
                           float(sdx[size_t(c)] / count));
      }
    }
  }
}

// The training backward a channel at a time where a channel's dy and x fit in L2 with room
// to spare (Channel at once, above): the sums, then dx, of one channel by one thread, the
// second pass reading from L2. Each plane's sums are taken and added in image order as
// plane_major_backward does: the same bits. The sums' stride is the channel's, so that
// their prefetch fetches this channel's plane of the next image.
void channel_at_once_backward(const Planes& p, const float* dy, const float* x, const float* mean,
                              const float* var, bool from_output, float eps, const float* gamma,
                              double s, const Tensor& dx, const Tensor& dgamma,
                              const Tensor& dbeta) {
  const double count = double(p.per_channel());
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.channels; ++c) {
    const ChannelGrad k = channel_grad(mean, var, gamma, from_output, eps, s, c);
    double sd = 0, sdx = 0;
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t q = b * p.channels + c;
      double pd = 0, pdx = 0;
      channel_grad_sums(dy + q * p.inner, x + q * p.inner, 1, p.channels * p.inner, p.inner,
                        k.x_mean, k.x_inv, pd, pdx);
      sd += pd;
      sdx += pdx;
    }
    if (dgamma.defined()) dgamma.data()[c] = float(s * sdx);
    if (dbeta.defined()) dbeta.data()[c] = float(s * sd);
    if (!dx.defined()) continue;
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t q = b * p.channels + c;
      channel_grad_input(dy + q * p.inner, x + q * p.inner, dx.data() + q * p.inner, 1, p.inner,
                         p.inner, k.x_mean, k.x_inv, k.g_inv, float(sd / count),
                         float(sdx / count));
    }
  }
}

// With xhat = (x - mean) * inv and g = gamma (1 without affine):
//   dbeta = sum dy, dgamma = sum dy * xhat;
//   training: dx = g * inv / M * (M * dy - dbeta - xhat * dgamma)  (statistics depend on x)
//   eval:     dx = g * inv * dy
void batch_norm_backward(const BackwardCall& call) {
  const auto& a = std::get<BatchNormAttrs>(call.attrs);
  CG_ASSERT(call.saved.size() == 2, "batch_norm backward without the forward's statistics");
  const Planes p(call.input_shapes[0]);
  const bool affine = call.input_shapes[1].rank() != 0;
  // Training without affine keeps the output, which is x̂ itself (ops/batch_norm.cpp): the
  // loops below then read it as x with mean 0 and 1 / sqrt(var + eps) = 1.
  const bool from_output = !call.outputs.empty() && call.outputs[0].defined();
  CG_ASSERT(from_output || call.inputs[0].defined(), "batch_norm backward without x or x̂");
  const Tensor x = (from_output ? call.outputs[0] : call.inputs[0]).contiguous();
  const Tensor dy = call.grad_outputs[0].contiguous();
  const Tensor gamma = affine ? call.inputs[1].contiguous() : Tensor();
  const float* mean = call.saved[0].data();
  const float* var = call.saved[1].data();
  const Tensor& dx = call.grad_inputs[0];
  const Tensor& dgamma = affine ? call.grad_inputs[1] : Tensor();
  const Tensor& dbeta = affine ? call.grad_inputs[2] : Tensor();
  const double count = double(p.per_channel());
  // dy stands for s * dy (kernel.h): the sums are dy's, and the gradients, linear in dy,
  // take s at the end.
  const double s = call.grad_scale;
  if (a.training && channel_at_once(p, 2)) {
    channel_at_once_backward(p, dy.data(), x.data(), mean, var, from_output, a.eps,
                             affine ? gamma.data() : nullptr, s, dx, dgamma, dbeta);
    return;
  }
  if (a.training && p.inner >= kPlaneMajorInner) {
    plane_major_backward(p, dy.data(), x.data(), mean, var, from_output, a.eps,
                         affine ? gamma.data() : nullptr, s, dx, dgamma, dbeta);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.channels; ++c) {
    const ChannelGrad k =
        channel_grad(mean, var, affine ? gamma.data() : nullptr, from_output, a.eps, s, c);
    const int64_t stride = p.channels * p.inner;
    double sum_dy = 0, sum_dy_xhat = 0;
    channel_grad_sums(dy.data() + p.offset(0, c), x.data() + p.offset(0, c), p.batch, stride,
                      p.inner, k.x_mean, k.x_inv, sum_dy, sum_dy_xhat);
    if (dgamma.defined()) dgamma.data()[c] = float(s * sum_dy_xhat);
    if (dbeta.defined()) dbeta.data()[c] = float(s * sum_dy);
    if (!dx.defined()) continue;
    const float mean_dy = float(sum_dy / count);
    const float mean_dy_xhat = float(sum_dy_xhat / count);
    if (a.training) {
      channel_grad_input(dy.data() + p.offset(0, c), x.data() + p.offset(0, c),
                         dx.data() + p.offset(0, c), p.batch, stride, p.inner, k.x_mean, k.x_inv,
                         k.g_inv, mean_dy, mean_dy_xhat);
      continue;
    }
    for (int64_t b = 0; b < p.batch; ++b) {
      const float* g = dy.data() + p.offset(b, c);
      float* d = dx.data() + p.offset(b, c);
      for (int64_t i = 0; i < p.inner; ++i) d[i] = k.g_inv * g[i];
    }
  }
}
}  // namespace

void add_batch_norm_kernels(KernelTable& table) {
  set(table, OpKind::batch_norm,
      Kernel{.forward = batch_norm_forward,
             .backward = batch_norm_backward,
             .takes_scaled_grad = true});
}

}  // namespace cellgraph::cpu
