#include "engine/backends/cpu/grad_target.h"

#include "engine/backends/vector_ops.h"

namespace cellgraph::cpu {

GradTarget::GradTarget(const BackwardCall& call, size_t i)
    : grad_(call.grad_inputs[i]),
      target_(call.accumulates_into(i) ? Tensor::empty(grad_.shape(), grad_.device()) : grad_) {}

void GradTarget::finish() const {
  if (target_.shares_storage_with(grad_)) return;
  vec::axpy(1.0f, target_, grad_);  // y + 1 * x: the add the autodiff would have made
}

}  // namespace cellgraph::cpu
