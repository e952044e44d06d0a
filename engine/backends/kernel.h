// The contract between the op dispatcher (ops/dispatch.cpp) and a backend's kernels.
// Kernels are plain functions; a backend holds one {forward, backward} pair per OpKind.
#pragma once

#include <span>
#include <vector>

#include "engine/tensor/tensor.h"
#include "ops/attrs.h"
#include "ops/op_list.h"

namespace cellgraph {

struct ForwardCall {
  OpKind kind;
  const Attrs& attrs;
  std::span<const Tensor> inputs;  // an undefined tensor is an absent optional input
  std::span<Tensor> outputs;       // allocated with the inferred shapes; kernel writes all
  std::vector<Tensor>* saved;      // null when no backward will run; else workspace for it
};

struct BackwardCall {
  OpKind kind;
  const Attrs& attrs;
  std::span<const Tensor> inputs;        // defined where the schema says its backward reads them
  std::span<const Shape> input_shapes;   // always known
  std::span<const Tensor> outputs;       // defined when the schema says the backward reads them
  std::span<const Tensor> saved;         // what the forward kernel pushed
  std::span<const Tensor> grad_outputs;  // always defined (zeros for unused outputs)
  std::span<Tensor> grad_inputs;         // defined where a gradient is wanted; kernel overwrites
  // Bit i set: grad_inputs[i] already holds a gradient (another reader's, of the same value)
  // and the kernel adds its own into it instead of overwriting. Set only for kernels whose
  // `accumulates` is true; saves the separate add of every further reader's gradient (a
  // read of both and a write) where the kernel can add as it writes.
  uint32_t accumulate = 0;
  bool accumulates_into(size_t i) const { return i < 32 && (accumulate >> i & 1u) != 0; }
  // The gradient of the op's one output is grad_scale * grad_outputs[0]: the reader of that
  // output handed its gradient out as a scaled view of its own (below) instead of writing
  // a scaled copy. Other than 1 only for kernels whose `takes_scaled_grad` is true.
  float grad_scale = 1.0f;
  // Bit i set: grad_inputs[i] is undefined and the kernel writes only
  // grad_input_scales[i] = s, meaning input i's gradient is s * grad_outputs[0]. Set only
  // for kernels whose `hands_out_scaled` is true, and only where the input's producer takes
  // scaled gradients: a weighted sum's gradient for each candidate is its coefficient times
  // the sum's gradient, which the candidate's closing batch norm can read with the
  // coefficient as a factor instead of from a copy (one write and one buffer less per
  // candidate).
  uint32_t scale_only = 0;
  std::span<float> grad_input_scales;
  bool hands_out_scale(size_t i) const { return i < 32 && (scale_only >> i & 1u) != 0; }
};

using ForwardKernel = void (*)(const ForwardCall&);
using BackwardKernel = void (*)(const BackwardCall&);

struct Kernel {
  ForwardKernel forward = nullptr;
  BackwardKernel backward = nullptr;
  bool accumulates = false;        // backward honours BackwardCall::accumulate
  bool takes_scaled_grad = false;  // backward honours BackwardCall::grad_scale (one output)
  bool hands_out_scaled = false;   // backward honours BackwardCall::scale_only
  // Every input of the output's shape gets grad_outputs[0] itself as its gradient (add,
  // add_n): the autodiff hands the node's gradient to such an input as a shared view
  // (BackwardCall::scale_only, scale 1) where it can, leaving that grad_input undefined,
  // instead of the kernel writing a copy per input. Any producer reads such a view: its
  // values are the gradient's. The kernel skips undefined grad_inputs.
  bool passes_grad_through = false;
};

}  // namespace cellgraph
