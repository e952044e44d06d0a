#include "engine/optim/clip.h"

#include <cmath>

#include "engine/error.h"
#include "engine/optim/optimizer.h"

namespace cellgraph {

double grad_norm(const std::vector<Var>& params) {
  double sum_sq = 0.0;
  for (const Var& p : params) {
    if (!p.defined() || !p.has_grad()) continue;
    if (p.grad().device() != Device::cpu)
      throw error("gradient norm: the gradient of '", p.name(), "' is on ",
                  device_name(p.grad().device()), "; clipping runs on CPU tensors only for now");
    const Tensor g = p.grad().contiguous();
    const float* src = g.data();
    const int64_t n = g.numel();
    double local = 0.0;
#pragma omp parallel for reduction(+ : local) if (n > detail::kOptimParallelThreshold)
    for (int64_t k = 0; k < n; ++k) local += static_cast<double>(src[k]) * src[k];
    sum_sq += local;
  }
  return std::sqrt(sum_sq);
}

float clip_grad_norm(const std::vector<Var>& params, float max_norm) {
  if (!(max_norm > 0.0f))
    throw error("clip_grad_norm: max_norm ", max_norm, " is invalid; expected a value > 0");
  const double norm = grad_norm(params);
  if (!(norm <= max_norm)) {  // also taken for NaN, as PyTorch multiplies regardless
    const float scale = static_cast<float>(max_norm / (norm + 1e-6));
    for (const Var& p : params) {
      if (!p.defined() || !p.has_grad()) continue;
      Var handle = p;
      Tensor g = p.grad().is_contiguous() ? p.grad() : p.grad().contiguous();
      float* dst = g.data();
      const int64_t n = g.numel();
#pragma omp parallel for if (n > detail::kOptimParallelThreshold)
      for (int64_t k = 0; k < n; ++k) dst[k] *= scale;
      handle.set_grad(g);
    }
  }
  return static_cast<float>(norm);
}

double clip_or_measure_grad_norm(const std::vector<Var>& params, float max_norm) {
  return max_norm > 0.0f ? double(clip_grad_norm(params, max_norm)) : grad_norm(params);
}

}  // namespace cellgraph
