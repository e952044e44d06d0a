#include <memory>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "ops/ops.h"
#include "ops/schema.h"

namespace cellgraph::ops {

namespace {
Device common_device(OpKind kind, const std::vector<Var>& inputs) {
  const Var* first = nullptr;
  for (const Var& v : inputs) {
    if (!v.defined()) continue;
    if (first == nullptr)
      first = &v;
    else if (v.device() != first->device())
      throw error(op_name(kind), ": inputs on different devices (", device_name(first->device()),
                  " and ", device_name(v.device()), ")");
  }
  CG_ASSERT(first != nullptr, op_name(kind), " called without any defined input");
  return first->device();
}

// What this node keeps for its backward: the schema's rule applied to this call, or its
// fixed masks. An op that may read either its input or its output (relu) reads the input
// when the node that produced it keeps that value anyway.
BackwardReads backward_reads(const OpSchema& s, const Attrs& attrs,
                             const std::vector<Var>& inputs) {
  if (s.backward_reads_input_or_output) {
    const Var& x = inputs[0];
    const Node* producer = x.is_leaf() ? nullptr : x.impl()->producer.get();
    const bool kept = producer != nullptr &&
                      size_t(x.impl()->output_index) < producer->saved_outputs.size() &&
                      producer->saved_outputs[size_t(x.impl()->output_index)].defined();
    return kept ? BackwardReads{.inputs = bit(0)} : BackwardReads{.outputs = true};
  }
  if (s.backward_reads == nullptr)
    return {.inputs = s.backward_reads_inputs, .outputs = s.backward_reads_outputs};
  std::vector<bool> given(inputs.size()), wanted(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    given[i] = inputs[i].defined();
    wanted[i] = given[i] && inputs[i].requires_grad() && has_bit(s.differentiable_inputs, i);
  }
  return s.backward_reads(attrs, given, wanted);
}

// A value the backward reads is recomputed instead of kept when the node that made it can
// run again and does not keep it itself (if it does, keeping it here costs nothing).
bool recomputable(const Var& v) {
  if (v.is_leaf()) return false;
  const Node& producer = *v.impl()->producer;
  const auto k = size_t(v.impl()->output_index);
  if (k < producer.saved_outputs.size() && producer.saved_outputs[k].defined()) return false;
  return producer.can_recompute && !producer.released;
}
}  // namespace

std::vector<Var> apply(OpKind kind, const Attrs& attrs, const std::vector<Var>& inputs) {
  const OpSchema& s = schema(kind);
  const int n = static_cast<int>(inputs.size());
  CG_ASSERT(n >= s.min_inputs && (s.max_inputs < 0 || n <= s.max_inputs), op_name(kind),
            " called with ", n, " inputs");
  const Device device = common_device(kind, inputs);

  std::vector<Shape> shapes(inputs.size());
  std::vector<Tensor> values(inputs.size());
  bool record = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    shapes[i] = inputs[i].shape();
    values[i] = inputs[i].value();
    record = record || (inputs[i].requires_grad() && has_bit(s.differentiable_inputs, i));
  }
  record = record && grad_enabled();

  const std::vector<Shape> out_shapes = s.infer(attrs, shapes);
  std::vector<Tensor> outputs;
  outputs.reserve(out_shapes.size());
  for (const Shape& shape : out_shapes) outputs.push_back(Tensor::empty(shape, device));

  std::shared_ptr<Node> node = record ? std::make_shared<Node>() : nullptr;
  const Kernel& kernel = backend_for(device).kernel(kind);
  const KernelStart start = kernel_start();
  kernel.forward(ForwardCall{kind, attrs, values, outputs, node ? &node->saved : nullptr});
  record_kernel(KernelPass::forward, kind, start, attrs, shapes);

  std::vector<Var> result;
  result.reserve(outputs.size());
  for (const Tensor& t : outputs) result.emplace_back(t, record);
  if (!node) return result;

  node->kind = kind;
  node->kernel_part = static_cast<uint8_t>(current_kernel_part());
  node->attrs = attrs;
  node->device = device;
  node->input_shapes = std::move(shapes);
  node->output_shapes = out_shapes;
  const BackwardReads reads = backward_reads(s, attrs, inputs);
  node->inputs.resize(inputs.size());
  node->saved_inputs.resize(inputs.size());
  if (s.cheap_to_recompute != nullptr) {
    const Recompute needs = s.cheap_to_recompute(attrs);
    node->can_recompute = needs != Recompute::none && needs <= recompute_level();
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Var& v = inputs[i];
    if (!v.defined()) continue;
    NodeInput& in = node->inputs[i];
    if (has_bit(reads.inputs, i)) {
      if (recomputable(v)) {
        in.recompute_from = v.impl()->producer;
        in.recompute_index = v.impl()->output_index;
      } else {
        node->saved_inputs[i] = values[i];
      }
    }
    node->can_recompute =
        node->can_recompute && (node->saved_inputs[i].defined() || in.recompute_from);
    in.wants_grad = v.requires_grad() && has_bit(s.differentiable_inputs, i);
    if (!in.wants_grad) continue;
    if (v.is_leaf()) {
      in.leaf = v.impl();
    } else {
      in.producer = v.impl()->producer;
      in.output_index = v.impl()->output_index;
    }
  }
  if (reads.outputs) node->saved_outputs = outputs;
  for (size_t i = 0; i < result.size(); ++i) {
    result[i].impl()->producer = node;
    result[i].impl()->output_index = static_cast<int>(i);
  }
  return result;
}

}  // namespace cellgraph::ops
