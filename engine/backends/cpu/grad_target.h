// Where a backward kernel writes grad_inputs[i] when it cannot add as it writes (a oneDNN
// primitive, loops that overwrite): grad_inputs[i] itself, or, when the call asks the
// kernel to add into it (BackwardCall::accumulate, kernel.h), a scratch tensor that
// finish() then adds in. The add is then the one the autodiff would have made.
#pragma once

#include "engine/backends/kernel.h"

namespace cellgraph::cpu {

class GradTarget {
 public:
  GradTarget(const BackwardCall& call, size_t i);
  const Tensor& tensor() const { return target_; }
  // Adds the scratch into the gradient (nothing when the kernel wrote the gradient itself).
  void finish() const;

 private:
  Tensor grad_, target_;
};

}  // namespace cellgraph::cpu
