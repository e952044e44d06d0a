// batch_norm: channel-parallel loops. oneDNN 2.6 serves plain NCHW batch norm only with
// its generic ncsp implementation, which measured several times slower than these loops
// in a DARTS search step (bench/profile_step). Training normalises with the batch
// statistics (biased variance) and then updates the running statistics in place with
// PyTorch's rule; eval normalises with the running statistics. The forward saves the
// statistics it normalised with, [mean, variance], so the backward needs neither the
// running tensors nor a recomputation. [N,C] input is treated as [N,C,1,1].
#include <cmath>
#include <cstdint>

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

// The per-plane loops (one image's H*W values of one channel). `omp simd` lets the
// reductions use vector lanes (the compiler may not reorder the sums otherwise), and, as
// in vector_loops.cpp, AVX-512 / AVX2 clones are chosen when the library loads since the
// project builds without -march: together ~4x on forwards and ~2x on backwards (min of 30
// runs at batch 64, 2 threads, against the scalar loops).
[[gnu::target_clones("avx512f", "avx2", "default")]] void plane_moments(const float* row, int64_t n,
                                                                        double& sum, double& sq) {
  double s = 0, q = 0;
#pragma omp simd reduction(+ : s, q)
  for (int64_t i = 0; i < n; ++i) {
    s += double(row[i]);
    q += double(row[i]) * double(row[i]);
  }
  sum += s;
  sq += q;
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void plane_affine(const float* in, float* out,
                                                                       int64_t n, float scale,
                                                                       float shift) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale + shift;
}

// sum dy and sum dy * xhat over a plane, xhat = (x - mean) * inv.
[[gnu::target_clones("avx512f", "avx2", "default")]] void plane_grad_sums(const float* g,
                                                                          const float* xs,
                                                                          int64_t n, float mean,
                                                                          float inv, double& sum_dy,
                                                                          double& sum_dy_xhat) {
  double s = 0, t = 0;
#pragma omp simd reduction(+ : s, t)
  for (int64_t i = 0; i < n; ++i) {
    s += double(g[i]);
    t += double(g[i]) * double((xs[i] - mean) * inv);
  }
  sum_dy += s;
  sum_dy_xhat += t;
}

// Training: dx = g_inv * (dy - mean_dy - xhat * mean_dy_xhat).
[[gnu::target_clones("avx512f", "avx2", "default")]] void plane_grad_input(
    const float* g, const float* xs, float* d, int64_t n, float mean, float inv, float g_inv,
    float mean_dy, float mean_dy_xhat) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float xhat = (xs[i] - mean) * inv;
    d[i] = g_inv * (g[i] - mean_dy - xhat * mean_dy_xhat);
  }
}

// Per-channel mean and biased variance, accumulated in double.
void batch_statistics(const float* x, const Planes& p, float* mean, float* var) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.channels; ++c) {
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < p.batch; ++n) plane_moments(x + p.offset(n, c), p.inner, sum, sq);
    const double m = sum / double(p.per_channel());
    mean[c] = float(m);
    var[c] = float(std::max(sq / double(p.per_channel()) - m * m, 0.0));
  }
}

void batch_norm_forward(const ForwardCall& call) {
  const auto& a = std::get<BatchNormAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  const bool affine = call.inputs[1].defined();
  const Planes p(x.shape());
  const int64_t n = p.per_channel();
  if (a.training && n < 2)
    throw error("batch_norm: training needs more than one value per channel, got input ",
                x.shape().str());
  // Eval reads the running statistics; copied when saved, since an optimizer or a later
  // training step may change them before this node's backward runs.
  Tensor mean, var;
  if (a.training) {
    mean = Tensor::empty({p.channels});
    var = Tensor::empty({p.channels});
    batch_statistics(x.data(), p, mean.data(), var.data());
  } else {
    mean = call.saved ? call.inputs[3].clone() : call.inputs[3].contiguous();
    var = call.saved ? call.inputs[4].clone() : call.inputs[4].contiguous();
  }
  const Tensor gamma = affine ? call.inputs[1].contiguous() : Tensor();
  const Tensor beta = affine ? call.inputs[2].contiguous() : Tensor();
  const float* src = x.data();
  float* dst = call.outputs[0].data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t c = 0; c < p.channels; ++c) {
      const float inv = 1.0f / std::sqrt(var.data()[c] + a.eps);
      const float scale = affine ? gamma.data()[c] * inv : inv;
      const float shift = (affine ? beta.data()[c] : 0.0f) - mean.data()[c] * scale;
      plane_affine(src + p.offset(b, c), dst + p.offset(b, c), p.inner, scale, shift);
    }
  }
  if (a.training) update_running(call.inputs[3], call.inputs[4], mean, var, a.momentum, n);
  if (call.saved) {
    call.saved->push_back(mean);
    call.saved->push_back(var);
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
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.channels; ++c) {
    const float inv = 1.0f / std::sqrt(var[c] + a.eps);
    // (x - x_mean) * x_inv is x̂, read from x or from the kept output.
    const float x_mean = from_output ? 0.0f : mean[c];
    const float x_inv = from_output ? 1.0f : inv;
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t b = 0; b < p.batch; ++b)
      plane_grad_sums(dy.data() + p.offset(b, c), x.data() + p.offset(b, c), p.inner, x_mean, x_inv,
                      sum_dy, sum_dy_xhat);
    if (dgamma.defined()) dgamma.data()[c] = float(sum_dy_xhat);
    if (dbeta.defined()) dbeta.data()[c] = float(sum_dy);
    if (!dx.defined()) continue;
    const float g_inv = (affine ? gamma.data()[c] : 1.0f) * inv;
    const float mean_dy = float(sum_dy / count);
    const float mean_dy_xhat = float(sum_dy_xhat / count);
    for (int64_t b = 0; b < p.batch; ++b) {
      const float* xs = x.data() + p.offset(b, c);
      const float* g = dy.data() + p.offset(b, c);
      float* d = dx.data() + p.offset(b, c);
      if (a.training) {
        plane_grad_input(g, xs, d, p.inner, x_mean, x_inv, g_inv, mean_dy, mean_dy_xhat);
      } else {
        for (int64_t i = 0; i < p.inner; ++i) d[i] = g_inv * g[i];
      }
    }
  }
}
}  // namespace

void add_batch_norm_kernels(KernelTable& table) {
  set(table, OpKind::batch_norm, batch_norm_forward, batch_norm_backward);
}

}  // namespace cellgraph::cpu
