// Gradient clipping, applied between backward() and Optimizer::step().
#pragma once

#include <vector>

#include "engine/autodiff/var.h"

namespace cellgraph {

// Global gradient-norm clipping with PyTorch's formula. The norm is the L2 norm over all
// defined gradients together (accumulated in double); parameters without a gradient are
// ignored. When norm > max_norm every defined gradient is scaled in place by
// max_norm / (norm + 1e-6); at or under the limit nothing changes. Returns the norm before
// clipping. A non-finite norm (a gradient holding inf or NaN) is returned as is and the
// scaling still runs, as PyTorch does with error_if_nonfinite=false: check the result.
// Throws cellgraph::Error unless max_norm > 0. Runs on the gradients' devices (the
// backends' sum_squares and scale, engine/backends/vector_ops.h).
float clip_grad_norm(const std::vector<Var>& params, float max_norm);

// The L2 norm over all defined gradients together, as clip_grad_norm computes it (NaN or
// inf when a gradient holds one).
double grad_norm(const std::vector<Var>& params);

// clip_grad_norm when max_norm > 0, else grad_norm: the norm every weight step reports and
// checks for divergence.
double clip_or_measure_grad_norm(const std::vector<Var>& params, float max_norm);

}  // namespace cellgraph
