#include <atomic>
#include <unordered_map>

#include "engine/autodiff/var.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "ops/schema.h"

namespace cellgraph {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<Recompute> g_recompute{Recompute::elementwise};

// dst += src, in place, through the backend's add kernel (which allows dst == a).
void accumulate_into(Tensor& dst, const Tensor& src) {
  const Tensor ins[2] = {dst, src};
  Tensor outs[1] = {dst};
  const Attrs attrs = NoAttrs{};
  const KernelStart start = kernel_start();
  backend_for(dst.device())
      .kernel(OpKind::add)
      .forward(ForwardCall{OpKind::add, attrs, ins, outs, nullptr});
  record_kernel(KernelPass::accumulate, OpKind::add, start);
}

// Nodes reachable from the roots, ordered so that every node comes after all its consumers.
std::vector<Node*> reverse_topological(const std::vector<Node*>& roots) {
  std::vector<Node*> order;
  std::unordered_map<Node*, int> state;  // 1 = on stack, 2 = done
  for (Node* root : roots) {
    if (state[root] != 0) continue;
    std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
    state[root] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < node->inputs.size()) {
        Node* child = node->inputs[next++].producer.get();
        if (child && state[child] == 0) {
          state[child] = 1;
          stack.emplace_back(child, 0);
        }
        continue;
      }
      state[node] = 2;
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

std::vector<Tensor> kept_or_recomputed_inputs(const Node& node) {
  std::vector<Tensor> inputs = node.saved_inputs;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (node.inputs[i].recompute_from)
      inputs[i] = recompute_output(*node.inputs[i].recompute_from, node.inputs[i].recompute_index);
  return inputs;
}

// The gradients waiting for a node's backward, one per output. `shared`: grads[0] is
// another node's gradient read as `scale` times its values (kernel.h, scale_only); it is
// never written in place, and a second gradient arriving for it makes it a tensor of its own.
struct Pending {
  std::vector<Tensor> grads;
  float scale = 1.0f;
  bool shared = false;
};
using PendingMap = std::unordered_map<Node*, Pending>;

// Where an input's gradient goes: its producer's pending gradient (`pending` set) or its
// leaf's grad.
struct Slot {
  Tensor* grad = nullptr;
  Pending* pending = nullptr;
};

Slot grad_slot(NodeInput& in, PendingMap& pending) {
  if (!in.producer) return {&in.leaf->grad, nullptr};
  Pending& p = pending[in.producer.get()];
  if (p.grads.empty()) p.grads.resize(in.producer->output_shapes.size());
  return {&p.grads[static_cast<size_t>(in.output_index)], &p};
}

bool shares_slot(const std::vector<Slot>& slots, size_t i) {
  for (size_t j = 0; j < slots.size(); ++j)
    if (j != i && slots[j].grad == slots[i].grad) return true;
  return false;
}

// A kernel that accumulates (kernel.h) adds input i's gradient straight into a slot that
// already holds one: a plain contiguous tensor of the input's shape, its own (not a shared
// view), which no other input of the node also feeds (two inputs adding into one tensor at
// once).
bool adds_into(const Node& node, size_t i, const std::vector<Slot>& slots) {
  const Tensor& slot = *slots[i].grad;
  if (i >= 32 || !slot.defined() || slot.shape() != node.input_shapes[i] ||
      slot.device() != node.device || !slot.is_contiguous())
    return false;
  if (slots[i].pending != nullptr && slots[i].pending->shared) return false;
  return !shares_slot(slots, i);
}

// Input i may receive the node's gradient as a shared view (kernel.h, scale_only): the
// input has the output's shape, its producer has one output, nothing has reached its slot
// yet and no other input of the node feeds that slot. A view scaled by a coefficient
// (`scaled`) needs a producer that reads scaled gradients; an unscaled one any producer.
bool may_share_view(const Node& node, size_t i, const std::vector<Slot>& slots, bool scaled) {
  if (i >= 32 || slots[i].pending == nullptr || slots[i].grad->defined() ||
      node.output_shapes.size() != 1 || node.input_shapes[i] != node.output_shapes[0])
    return false;
  const Node& producer = *node.inputs[i].producer;
  if (producer.output_shapes.size() != 1 || producer.device != node.device ||
      (scaled && !backend_for(producer.device).kernel(producer.kind).takes_scaled_grad))
    return false;
  return !shares_slot(slots, i);
}

// A weighted sum's view, scaled by its coefficient (kernel.h, hands_out_scaled).
bool hands_out_scaled(const Kernel& kernel, const Node& node, size_t i,
                      const std::vector<Slot>& slots) {
  return kernel.hands_out_scaled && may_share_view(node, i, slots, true);
}

// A sum's own gradient, passed through unscaled (kernel.h, passes_grad_through). The node's
// gradient is unscaled here: its kernel reads no scaled gradients (asserted by the caller).
bool passes_grad_through(const Kernel& kernel, const Node& node, size_t i,
                         const std::vector<Slot>& slots) {
  return kernel.passes_grad_through && may_share_view(node, i, slots, false);
}

// A further gradient for a slot that holds a shared view: `own` (this call's buffer) gets
// the view's share added and becomes the slot's tensor.
void merge_into_own(Slot& slot, Tensor own) {
  const KernelStart start = kernel_start();
  backend_for(own.device()).axpy(slot.pending->scale, slot.grad->contiguous(), own);
  record_kernel(KernelPass::accumulate, OpKind::add, start);
  *slot.grad = std::move(own);
  slot.pending->shared = false;
  slot.pending->scale = 1.0f;
}

void run_node_backward(Node& node, Pending& pending_here, PendingMap& pending) {
  std::vector<Tensor>& grad_outputs = pending_here.grads;
  for (size_t i = 0; i < grad_outputs.size(); ++i)
    if (!grad_outputs[i].defined())
      grad_outputs[i] = Tensor::zeros(node.output_shapes[i], node.device);

  bool any = false;
  for (const NodeInput& in : node.inputs) any = any || in.wants_grad;
  if (!any) return;
  const Kernel& kernel = backend_for(node.device).kernel(node.kind);
  if (kernel.backward == nullptr)
    throw error("op '", op_name(node.kind), "' has no backward kernel on the ",
                device_name(node.device), " backend");
  CG_ASSERT(!pending_here.shared || pending_here.scale == 1.0f || kernel.takes_scaled_grad,
            "a scaled gradient for a '", op_name(node.kind),
            "' node, whose kernel does not read one");
  CG_ASSERT(!(kernel.takes_scaled_grad && kernel.hands_out_scaled),
            "a kernel both reading and handing out scaled gradients");

  std::vector<Slot> slots(node.inputs.size());
  for (size_t i = 0; i < node.inputs.size(); ++i)
    if (node.inputs[i].wants_grad) slots[i] = grad_slot(node.inputs[i], pending);
  std::vector<Tensor> grad_inputs(node.inputs.size());
  std::vector<float> scales(node.inputs.size(), 1.0f);
  uint32_t accumulate = 0;
  uint32_t scale_only = 0;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    if (slots[i].grad == nullptr) continue;
    if (hands_out_scaled(kernel, node, i, slots) || passes_grad_through(kernel, node, i, slots)) {
      scale_only |= 1u << i;  // the kernel writes a hands_out_scaled input's scale
    } else if (kernel.accumulates && adds_into(node, i, slots)) {
      grad_inputs[i] = *slots[i].grad;
      accumulate |= 1u << i;
    } else {
      grad_inputs[i] = Tensor::empty(node.input_shapes[i], node.device);
    }
  }

  // Inputs that were not kept are rebuilt now and dropped with this call.
  const std::vector<Tensor> inputs = kept_or_recomputed_inputs(node);
  const KernelPartScope part(static_cast<KernelPart>(node.kernel_part));
  const KernelStart start = kernel_start();
  BackwardCall call{node.kind,  node.attrs,   inputs,      node.input_shapes, node.saved_outputs,
                    node.saved, grad_outputs, grad_inputs, accumulate};
  call.grad_scale = pending_here.shared ? pending_here.scale : 1.0f;
  call.scale_only = scale_only;
  call.grad_input_scales = scales;
  kernel.backward(call);
  record_kernel(KernelPass::backward, node.kind, start, node.attrs, node.input_shapes);

  for (size_t i = 0; i < node.inputs.size(); ++i) {
    Slot& slot = slots[i];
    const bool added = i < 32 && (accumulate >> i & 1u) != 0;  // by the kernel
    if (slot.grad == nullptr || added) continue;
    if (i < 32 && (scale_only >> i & 1u) != 0) {  // the slot was empty (hands_out_scaled)
      *slot.grad = grad_outputs[0];
      slot.pending->scale = scales[i];
      slot.pending->shared = true;
    } else if (!slot.grad->defined()) {
      *slot.grad = std::move(grad_inputs[i]);
    } else if (slot.pending != nullptr && slot.pending->shared) {
      merge_into_own(slot, std::move(grad_inputs[i]));
    } else {
      accumulate_into(*slot.grad, grad_inputs[i]);
    }
  }
}
}  // namespace

Tensor recompute_output(const Node& node, int index) {
  CG_ASSERT(node.can_recompute && !node.released, "recomputing the output of a '",
            op_name(node.kind), "' node that did not keep its inputs");
  const std::vector<Tensor> inputs = kept_or_recomputed_inputs(node);
  std::vector<Tensor> outputs;
  for (const Shape& shape : node.output_shapes)
    outputs.push_back(Tensor::empty(shape, node.device));
  const KernelPartScope part(static_cast<KernelPart>(node.kernel_part));
  const KernelStart start = kernel_start();
  backend_for(node.device)
      .kernel(node.kind)
      .forward(ForwardCall{node.kind, node.attrs, inputs, outputs, nullptr});
  record_kernel(KernelPass::recompute, node.kind, start, node.attrs, node.input_shapes);
  return outputs[size_t(index)];
}

Var::Var(Tensor value, bool requires_grad, std::string name) : impl_(std::make_shared<VarImpl>()) {
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
  impl_->name = std::move(name);
}

void Var::backward() const {
  CG_ASSERT(value().numel() == 1, "backward() without a gradient needs a one-element value, got ",
            shape().str());
  backward(Tensor::full(shape(), 1.0f, device()));
}

void Var::backward(const Tensor& grad) const { cellgraph::backward({*this}, {grad}); }

void backward(const std::vector<Var>& roots, const std::vector<Tensor>& grads) {
  CG_ASSERT(roots.size() == grads.size(), roots.size(), " roots but ", grads.size(), " gradients");
  PendingMap pending;
  std::vector<Node*> starts;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Var& root = roots[i];
    CG_ASSERT(grads[i].shape() == root.shape(), "backward gradient ", grads[i].shape().str(),
              " for ", root.shape().str());
    if (!root.requires_grad()) continue;
    if (root.is_leaf()) {
      Tensor& g = root.impl()->grad;
      if (g.defined())
        accumulate_into(g, grads[i]);
      else
        g = grads[i].clone();
      continue;
    }
    Node* node = root.impl()->producer.get();
    auto& slots = pending[node].grads;
    if (slots.empty()) slots.resize(node->output_shapes.size());
    Tensor& slot = slots[static_cast<size_t>(root.impl()->output_index)];
    if (slot.defined())
      accumulate_into(slot, grads[i]);
    else
      slot = grads[i].clone();
    starts.push_back(node);
  }
  for (Node* node : reverse_topological(starts)) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;  // no gradient reached it
    Pending node_grads = std::move(it->second);
    pending.erase(it);
    CG_ASSERT(!node->released, "a second backward through the same recorded '", op_name(node->kind),
              "' node; run the forward again");
    run_node_backward(*node, node_grads, pending);
    // The graph is used once: free what the node kept for its backward.
    node->saved_inputs.clear();
    node->saved_outputs.clear();
    node->saved.clear();
    node->released = true;
  }
}

GradModeGuard::GradModeGuard(bool enabled) : previous_(g_grad_enabled) { g_grad_enabled = enabled; }
GradModeGuard::~GradModeGuard() { g_grad_enabled = previous_; }
bool grad_enabled() { return g_grad_enabled; }

void set_recompute(Recompute level) { g_recompute = level; }
Recompute recompute_level() { return g_recompute; }

FreezeGuard::FreezeGuard(const std::vector<Var>& vars) : vars_(vars) {
  for (const Var& v : vars_) {
    previous_.push_back(v.impl()->requires_grad);
    v.impl()->requires_grad = false;
  }
}

FreezeGuard::~FreezeGuard() {
  for (size_t i = 0; i < vars_.size(); ++i) vars_[i].impl()->requires_grad = previous_[i];
}

}  // namespace cellgraph
