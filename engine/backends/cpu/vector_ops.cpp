// The CPU backend's vector operations (engine/backends/vector_ops.h): the loops that the
// optimizers, gradient clipping, the divergence check, DARTS' second order and NASP ran on
// host pointers, moved here unchanged, so results are bit-identical to theirs (the
// resume tests compare whole runs bit for bit).
//
// They are plain loops built for the baseline x86-64 target, not vector_loops.h's
// target_clones: in the AVX-512 clone GCC fuses a * x + y into one FMA (one rounding
// instead of two; vfmadd in vector_loops.o), so cpu::axpy's result depends on the machine.
// An optimizer update computed that way would differ from these loops and between
// machines. Element-wise loops run OpenMP-parallel above kParallelThreshold (the split
// does not change their results); the reductions accumulate in double: sum_squares per
// thread over a static partition, the partial sums added in thread order (see there),
// sum_squares_sequential in one accumulator in element order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/cpu/kernels.h"
#include "engine/backends/cpu/vector_loops.h"

namespace cellgraph::cpu {

namespace {
// Loops above this many elements run OpenMP-parallel; below it the fork costs more.
constexpr int64_t kParallelThreshold = 1 << 15;

// Element i of an optional input, zero when the input is undefined (null).
inline float or_zero(const float* x, int64_t i) { return x != nullptr ? x[i] : 0.0f; }
const float* optional_data(const Tensor& t) { return t.defined() ? t.data() : nullptr; }
}  // namespace

void CpuBackend::sgd_step(const Tensor& weights, const Tensor& grad, const Tensor& buffer,
                          const SgdStep& step) {
  const float lr = step.lr;
  const float mom = step.momentum;
  const float wd = step.weight_decay;
  const bool nesterov = step.nesterov;
  float* w = weights.data();
  const float* g_in = grad.data();
  const int64_t n = grad.numel();
  if (!buffer.defined()) {
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t k = 0; k < n; ++k) w[k] -= lr * (g_in[k] + wd * w[k]);
    return;
  }
  float* buf = buffer.data();
  // PyTorch starts the buffer at the first gradient rather than decaying a zero buffer.
  const bool first = step.first;
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t k = 0; k < n; ++k) {
    const float g = g_in[k] + wd * w[k];
    const float b = first ? g : mom * buf[k] + g;
    buf[k] = b;
    w[k] -= lr * (nesterov ? g + mom * b : b);
  }
}

void CpuBackend::adam_step(const Tensor& weights, const Tensor& grad, const Tensor& first_moment,
                           const Tensor& second_moment, const AdamStep& step) {
  const float b1 = step.beta1;
  const float b2 = step.beta2;
  const float eps = step.eps;
  const float wd = step.weight_decay;
  const float step_size = step.step_size;
  const float bias2_sqrt = step.bias2_sqrt;
  float* w = weights.data();
  float* m = first_moment.data();
  float* v = second_moment.data();
  const float* g_in = grad.data();
  const int64_t n = grad.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t k = 0; k < n; ++k) {
    const float g = g_in[k] + wd * w[k];
    m[k] = b1 * m[k] + (1.0f - b1) * g;
    v[k] = b2 * v[k] + (1.0f - b2) * g * g;
    const float denom = std::sqrt(v[k]) / bias2_sqrt + eps;
    w[k] -= step_size * (m[k] / denom);
  }
}

void CpuBackend::sgd_lookahead(const Tensor& weights, const Tensor& grad, const Tensor& buffer,
                               float lr, float momentum, float weight_decay) {
  float* p = weights.data();
  const float* g = optional_data(grad);
  const float* m = optional_data(buffer);
  const int64_t n = weights.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t e = 0; e < n; ++e) {
    const float step = (m ? momentum * m[e] : 0.0f) + or_zero(g, e) + weight_decay * p[e];
    p[e] -= lr * step;
  }
}

// Each thread sums its static share of the elements, then the partial sums are added in
// thread order. This used to be `omp parallel for reduction(+ : local)`, whose partial sums
// libgomp adds in the order the threads finish: the same bits at one or two threads (the
// partition is the same and a + b = b + a), but at eight threads a norm of 10^6 elements
// took 3 different values in 300 runs, so gradient clipping made runs irreproducible.
double CpuBackend::sum_squares(const Tensor& x) {
  const float* src = x.data();
  const int64_t n = x.numel();
  if (n <= kParallelThreshold) {
    double sum = 0.0;
    for (int64_t k = 0; k < n; ++k) sum += static_cast<double>(src[k]) * src[k];
    return sum;
  }
  std::vector<double> partial(static_cast<size_t>(omp_get_max_threads()), 0.0);
#pragma omp parallel
  {
    double local = 0.0;
#pragma omp for schedule(static)
    for (int64_t k = 0; k < n; ++k) local += static_cast<double>(src[k]) * src[k];
    partial[static_cast<size_t>(omp_get_thread_num())] = local;
  }
  double sum = 0.0;
  for (const double p : partial) sum += p;
  return sum;
}

double CpuBackend::batch_norm_dot(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& running_mean, const Tensor& running_var,
                                  float momentum, float eps, const Tensor& g) {
  return batch_norm_forward_dot(x, gamma, beta, running_mean, running_var, momentum, eps, g);
}

double CpuBackend::sum_squares_sequential(const Tensor& x, double start) {
  const float* d = x.data();
  const int64_t n = x.numel();
  for (int64_t e = 0; e < n; ++e) start += double(d[e]) * double(d[e]);
  return start;
}

bool CpuBackend::all_finite(const Tensor& x) {
  const float* src = x.data();
  const int64_t n = x.numel();
  bool finite = true;
  for (int64_t k = 0; k < n && finite; ++k) finite = std::isfinite(src[k]);
  return finite;
}

void CpuBackend::scale(const Tensor& x, float s) {
  float* dst = x.data();
  const int64_t n = x.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t k = 0; k < n; ++k) dst[k] *= s;
}

void CpuBackend::axpy(float a, const Tensor& x, const Tensor& y) {
  const float* src = x.data();
  float* dst = y.data();
  const int64_t n = y.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t k = 0; k < n; ++k) dst[k] += a * src[k];
}

void CpuBackend::subtract_difference_quotient(const Tensor& y, float a, const Tensor& u,
                                              const Tensor& v, float c) {
  float* d = y.data();
  const float* p = optional_data(u);
  const float* m = optional_data(v);
  const int64_t n = y.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t e = 0; e < n; ++e) d[e] -= a * (or_zero(p, e) - or_zero(m, e)) / c;
}

void CpuBackend::clamp(const Tensor& x, float lo, float hi) {
  float* p = x.data();
  const int64_t n = x.numel();
#pragma omp parallel for if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) p[i] = std::clamp(p[i], lo, hi);
}

// Vectorised (vector_loops.h), unlike the loops above: a reduction read by no optimizer
// state, summed as weighted_sum's backward sums the same products (dot_double over a
// static partition, partial sums in thread order).
double CpuBackend::dot(const Tensor& x, const Tensor& y) {
  const float* a = x.data();
  const float* b = y.data();
  const int64_t n = x.numel();
  if (n <= kParallelThreshold) return dot_double(a, b, n);
  std::vector<double> partial(static_cast<size_t>(omp_get_max_threads()), 0.0);
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t lo = n * t / threads, hi = n * (t + 1) / threads;
    partial[static_cast<size_t>(t)] = dot_double(a + lo, b + lo, hi - lo);
  }
  double sum = 0.0;
  for (const double p : partial) sum += p;
  return sum;
}

}  // namespace cellgraph::cpu
