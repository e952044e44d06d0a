// Vector operations: the numeric work outside the op graph (optimizer updates, gradient
// norms and clipping, the finiteness check, DARTS' unrolled step and finite differences,
// NASP's projection), run by the backend of the tensors' device, so that code above the
// engine never loops over raw pointers and a second backend needs no change above it.
//
// Why backend calls and not ops in the op list: an op is a function of values; the
// dispatcher infers its output shapes, allocates fresh outputs and records an autodiff
// node. These are in-place updates of state that autodiff must never see (a parameter and
// its momentum buffer, or its Adam moments, updated together) and reductions that return a
// host scalar (a norm, "all finite?"). As ops they would allocate a new tensor per
// parameter per step and copy it back.
//
// These functions check their arguments (defined where required, one device, equal
// element counts) and call the matching virtual method of backend_for(device) (backend.h).
// A backend that lacks one reports "the cuda backend has no kernel for vector operation
// 'sgd_step'", like a missing op kernel. The CPU implementations
// (engine/backends/cpu/vector_ops.cpp) compute exactly what the host loops they replace
// computed, bit for bit; another backend may round or sum in another order.
#pragma once

#include "engine/tensor/tensor.h"

namespace cellgraph {

// One SGD step of a parameter (engine/optim/sgd.h has the formula). `first`: the
// parameter's first step, which starts the momentum buffer at the gradient.
struct SgdStep {
  float lr = 0;
  float momentum = 0;
  float weight_decay = 0;
  bool nesterov = false;
  bool first = false;
};

// One Adam step of a parameter (engine/optim/adam.h has the formula); the bias corrections
// are host scalars of the step count: step_size = lr / (1 - beta1^t), bias2_sqrt =
// sqrt(1 - beta2^t).
struct AdamStep {
  float beta1 = 0;
  float beta2 = 0;
  float eps = 0;
  float weight_decay = 0;
  float step_size = 0;
  float bias2_sqrt = 0;
};

namespace vec {

// In-place targets (w, buffers, y, x below) must be contiguous; read-only inputs may be
// views (they are made contiguous first).

// SGD: g = grad + wd * w; with momentum, buffer = first ? g : momentum * buffer + g and
// w -= lr * (nesterov ? g + momentum * buffer : buffer); without (buffer undefined),
// w -= lr * g.
void sgd_step(const Tensor& w, const Tensor& grad, const Tensor& buffer, const SgdStep& step);
// Adam: g = grad + wd * w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= step_size * m / (sqrt(v) / bias2_sqrt + eps).
void adam_step(const Tensor& w, const Tensor& grad, const Tensor& m, const Tensor& v,
               const AdamStep& step);
// DARTS' unrolled weights: w -= lr * (momentum * buffer + grad + weight_decay * w), the
// step SGD would take, without touching the buffer. grad or buffer may be undefined (a
// zero term).
void sgd_lookahead(const Tensor& w, const Tensor& grad, const Tensor& buffer, float lr,
                   float momentum, float weight_decay);

// The sum of x[i]^2 in double. On the CPU, tensors above 2^15 elements are summed by
// OpenMP threads (per-thread partial sums added in thread order), so the result depends
// on the thread count, and only on it.
double sum_squares(const Tensor& x);
// start + x[0]^2 + x[1]^2 + ... in one double accumulator, in element order: the norm
// DARTS' finite-difference radius is taken from (a sequential sum over all weight
// gradients, kept so that the radius stays bit-identical).
double sum_squares_sequential(const Tensor& x, double start);
// True when every element is finite (an undefined tensor is).
bool all_finite(const Tensor& x);

// x *= s
void scale(const Tensor& x, float s);
// y += a * x (a multiply and an add, never fused, so y -= lr * x is axpy(-lr, x, y) bit
// for bit)
void axpy(float a, const Tensor& x, const Tensor& y);
// y -= a * (u - v) / c, u or v undefined meaning zeros: DARTS' dalpha - xi * (plus -
// minus) / 2r.
void subtract_difference_quotient(const Tensor& y, float a, const Tensor& u, const Tensor& v,
                                  float c);
// x = clamp(x, lo, hi) (NaN stays NaN): NASP's projection onto the box [0, 1].
void clamp(const Tensor& x, float lo, float hi);
// <x, y> summed in double: a coefficient's gradient from a candidate's output as soon as
// that output exists (NASP's architecture step, sched/executor.cpp). Deterministic for a
// given thread count.
double dot(const Tensor& x, const Tensor& y);
// <g, batch_norm(x)> of a training-mode batch norm whose output nothing else reads, without
// writing that output: NASP's architecture step dots a forward-only candidate's closing
// batch norm with the gradient at its sum (sched/executor.cpp). The batch statistics and
// the running statistics' update are ops::batch_norm's, bit for bit; the dot is taken in
// one pass over x and g as, per channel, scale * sum(g x) + shift * sum(g) in double with
// the batch norm's float scale and shift, so it is <g, x * scale + shift> without the
// normalised values' rounding to float (which <g, batch_norm(x)> has), the channels added
// in order (the same for any thread count). gamma and beta undefined: no affine. Counted
// as a batch_norm forward in the kernel counts (backend.h), which it replaces.
double batch_norm_dot(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                      const Tensor& running_mean, const Tensor& running_var, float momentum,
                      float eps, const Tensor& g);

}  // namespace vec
}  // namespace cellgraph
