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
};

using ForwardKernel = void (*)(const ForwardCall&);
using BackwardKernel = void (*)(const BackwardCall&);

struct Kernel {
  ForwardKernel forward = nullptr;
  BackwardKernel backward = nullptr;
  bool accumulates = false;  // backward honours BackwardCall::accumulate
};

}  // namespace cellgraph
