#include "engine/backends/cpu/grad_target.h"

#include <algorithm>

#include "engine/backends/cpu/vector_loops.h"

namespace cellgraph::cpu {

GradTarget::GradTarget(const BackwardCall& call, size_t i)
    : grad_(call.grad_inputs[i]),
      target_(call.accumulates_into(i) ? Tensor::empty(grad_.shape(), grad_.device()) : grad_) {}

void GradTarget::finish() const {
  if (target_.shares_storage_with(grad_)) return;
  add_into(grad_.data(), target_.data(), grad_.numel());
}

void add_into(float* dst, const float* src, int64_t n) {
  constexpr int64_t kBlock = 1 << 14;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * kBlock;
    axpy(1.0f, src + lo, dst + lo, std::min(n, lo + kBlock) - lo);
  }
}

}  // namespace cellgraph::cpu
