#include "engine/optim/clip.h"

#include <cmath>

#include "engine/backends/vector_ops.h"
#include "engine/error.h"

namespace cellgraph {

double grad_norm(const std::vector<Var>& params) {
  double sum_sq = 0.0;
  for (const Var& p : params) {
    if (!p.defined() || !p.has_grad()) continue;
    sum_sq += vec::sum_squares(p.grad());
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
      vec::scale(g, scale);
      handle.set_grad(g);
    }
  }
  return static_cast<float>(norm);
}

double clip_or_measure_grad_norm(const std::vector<Var>& params, float max_norm) {
  return max_norm > 0.0f ? double(clip_grad_norm(params, max_norm)) : grad_norm(params);
}

}  // namespace cellgraph
