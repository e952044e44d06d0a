// The argument checks in front of the backends' vector operations (vector_ops.h).
#include "engine/backends/vector_ops.h"

#include <initializer_list>

#include "engine/backends/backend.h"
#include "engine/error.h"

namespace cellgraph::vec {

namespace {
// The backend of `target`'s device, after checking that `target` is a defined contiguous
// tensor and every defined tensor in `others` is on its device with as many elements.
Backend& backend_of(const char* operation, const Tensor& target,
                    std::initializer_list<const Tensor*> others = {}) {
  CG_ASSERT(target.defined(), operation, ": undefined target");
  CG_ASSERT(target.is_contiguous(), operation, ": non-contiguous target ", target.shape().str());
  for (const Tensor* t : others) {
    if (!t->defined()) continue;
    if (t->device() != target.device())
      throw error(operation, ": tensors on ", device_name(target.device()), " and ",
                  device_name(t->device()), "; expected one device");
    CG_ASSERT(t->numel() == target.numel(), operation, ": ", t->shape().str(), " against ",
              target.shape().str());
  }
  return backend_for(target.device());
}

// Times one vector operation for the kernel counts' split (backend.h); nothing while the
// split is off.
class Timed {
 public:
  Timed() : on_(kernel_split()), start_(on_ ? kernel_start() : KernelStart{}) {}
  ~Timed() {
    if (on_) record_kernel(KernelPass::vector_op, OpKind{}, start_);
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  bool on_;
  KernelStart start_;
};

// A read-only input ready for the backend: undefined stays undefined, views are copied.
Tensor input(const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); }
}  // namespace

void sgd_step(const Tensor& w, const Tensor& grad, const Tensor& buffer, const SgdStep& step) {
  const Timed timed;
  CG_ASSERT(grad.defined(), "sgd_step without a gradient");
  CG_ASSERT(buffer.defined() == (step.momentum != 0.0f), "sgd_step: a momentum buffer ",
            buffer.defined() ? "with" : "without", " momentum ", step.momentum);
  CG_ASSERT(!buffer.defined() || buffer.is_contiguous(), "sgd_step: non-contiguous buffer");
  backend_of("sgd_step", w, {&grad, &buffer}).sgd_step(w, input(grad), buffer, step);
}

void adam_step(const Tensor& w, const Tensor& grad, const Tensor& m, const Tensor& v,
               const AdamStep& step) {
  const Timed timed;
  CG_ASSERT(grad.defined() && m.defined() && v.defined(), "adam_step: missing tensors");
  CG_ASSERT(m.is_contiguous() && v.is_contiguous(), "adam_step: non-contiguous moments");
  backend_of("adam_step", w, {&grad, &m, &v}).adam_step(w, input(grad), m, v, step);
}

void sgd_lookahead(const Tensor& w, const Tensor& grad, const Tensor& buffer, float lr,
                   float momentum, float weight_decay) {
  const Timed timed;
  backend_of("sgd_lookahead", w, {&grad, &buffer})
      .sgd_lookahead(w, input(grad), input(buffer), lr, momentum, weight_decay);
}

double sum_squares(const Tensor& x) {
  const Timed timed;
  const Tensor c = input(x);
  return backend_of("sum_squares", c).sum_squares(c);
}

double sum_squares_sequential(const Tensor& x, double start) {
  const Timed timed;
  const Tensor c = input(x);
  return backend_of("sum_squares_sequential", c).sum_squares_sequential(c, start);
}

bool all_finite(const Tensor& x) {
  const Timed timed;
  if (!x.defined()) return true;
  const Tensor c = input(x);
  return backend_of("all_finite", c).all_finite(c);
}

void scale(const Tensor& x, float s) {
  const Timed timed;
  backend_of("scale", x).scale(x, s);
}

void axpy(float a, const Tensor& x, const Tensor& y) {
  const Timed timed;
  CG_ASSERT(x.defined(), "axpy without x");
  backend_of("axpy", y, {&x}).axpy(a, input(x), y);
}

void subtract_difference_quotient(const Tensor& y, float a, const Tensor& u, const Tensor& v,
                                  float c) {
  const Timed timed;
  backend_of("subtract_difference_quotient", y, {&u, &v})
      .subtract_difference_quotient(y, a, input(u), input(v), c);
}

double dot(const Tensor& x, const Tensor& y) {
  const Timed timed;
  const Tensor a = input(x), b = input(y);
  return backend_of("dot", a, {&b}).dot(a, b);
}

double batch_norm_dot(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                      const Tensor& running_mean, const Tensor& running_var, float momentum,
                      float eps, const Tensor& g) {
  const KernelStart start = kernel_start();  // timed and counted as the forward it replaces
  const Tensor a = input(x), b = input(g);
  CG_ASSERT(a.shape() == b.shape(), "batch_norm_dot: x ", a.shape().str(), " against g ",
            b.shape().str());
  CG_ASSERT(running_mean.is_contiguous() && running_var.is_contiguous(),
            "batch_norm_dot: running statistics must be contiguous");
  const double sum = backend_of("batch_norm_dot", a, {&b})
                         .batch_norm_dot(a, input(gamma), input(beta), running_mean, running_var,
                                         momentum, eps, b);
  // Keyed by x and g: a batch norm's own forward has its [C] statistics among its inputs.
  const Shape shapes[] = {a.shape(), b.shape()};
  record_kernel(KernelPass::forward, OpKind::batch_norm, start, NoAttrs{}, shapes);
  return sum;
}

void clamp(const Tensor& x, float lo, float hi) {
  const Timed timed;
  backend_of("clamp", x).clamp(x, lo, hi);
}

}  // namespace cellgraph::vec
