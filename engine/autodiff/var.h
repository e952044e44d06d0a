// Reverse-mode autodiff over the ops that actually ran. Every op call on Vars that need a
// gradient records a Node (the op, its attributes, what its backward reads); backward()
// walks the recorded nodes from a scalar loss in reverse topological order, accumulating
// gradients where a value fans out. Leaves that require a gradient (parameters,
// architecture weights, a test's inputs) receive it in Var::grad(); intermediate
// gradients and saved activations are freed as soon as their node has run.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"
#include "ops/attrs.h"
#include "ops/op_list.h"

namespace cellgraph {

struct Node;

struct VarImpl {
  Tensor value;
  Tensor grad;  // undefined until a backward pass reaches this leaf
  bool requires_grad = false;
  std::shared_ptr<Node> producer;  // null for leaves
  int output_index = 0;
  std::string name;  // for parameters; used in messages and checkpoints
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false, std::string name = {});

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const { return impl_->value; }
  Tensor& value() { return impl_->value; }
  const Shape& shape() const { return impl_->value.shape(); }
  Device device() const { return impl_->value.device(); }
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  bool is_leaf() const { return impl_->producer == nullptr; }
  const std::string& name() const { return impl_->name; }

  // Leaf gradient, undefined if no backward pass reached this leaf since zero_grad().
  const Tensor& grad() const { return impl_->grad; }
  bool has_grad() const { return impl_->grad.defined(); }
  void zero_grad() { impl_->grad = Tensor(); }  // "no gradient", not a zero tensor
  void set_grad(Tensor g) { impl_->grad = std::move(g); }

  // The same value, cut from the graph (no gradient flows through it).
  Var detach() const { return Var(impl_->value, false); }

  // Backpropagates from this one-element value, seeding d(this)/d(this) = 1.
  void backward() const;
  // Backpropagates from this value with the given gradient (same shape).
  void backward(const Tensor& grad) const;

  const std::shared_ptr<VarImpl>& impl() const { return impl_; }
  explicit Var(std::shared_ptr<VarImpl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<VarImpl> impl_;
};

// One input slot of a recorded node: where its gradient goes.
struct NodeInput {
  std::shared_ptr<Node> producer;  // the node that made it, or null
  int output_index = 0;
  std::shared_ptr<VarImpl> leaf;  // a leaf that wants a gradient, or null
  bool wants_grad = false;
  // Set where the backward reads this input but it was not kept: the node that made it
  // runs its forward again from what that node keeps (see Node::can_recompute).
  std::shared_ptr<Node> recompute_from;
  int recompute_index = 0;
};

struct Node {
  OpKind kind{};
  Attrs attrs;
  Device device = Device::cpu;
  std::vector<NodeInput> inputs;
  std::vector<Shape> input_shapes;
  std::vector<Tensor> saved_inputs;   // per input; defined only where the backward reads it
  std::vector<Tensor> saved_outputs;  // per output; defined only where the backward reads it
  std::vector<Shape> output_shapes;
  std::vector<Tensor> saved;  // kernel workspace (BN statistics, pool indices, masks)
  bool released = false;      // its backward ran and its saved tensors were freed
  // Its op is cheap to run again (relu, a depthwise conv) and every input it was given is
  // kept or can itself be recomputed: a consumer whose backward reads this node's output
  // need not keep it. A node's backward runs after its consumers', so what it keeps is
  // still there when they recompute.
  bool can_recompute = false;
  uint8_t kernel_part = 0;  // the KernelPart it was recorded in (kernel counts' split)
};

// How much forward work a backward may redo so that less is kept between a forward and its
// backward. Each cheap_to_recompute op names the level it needs: elementwise (relu: one
// memory-bound pass, measured no slower than keeping it) or convolutions (a depthwise conv:
// DARTS' search step keeps 38% less at its peak and takes ~6% longer, bench/README.md).
enum class Recompute : uint8_t { none, elementwise, convolutions };
void set_recompute(Recompute level);  // for this process; default elementwise
Recompute recompute_level();

// Runs a recorded node's forward again on what it kept (recomputing its own inputs where
// needed) and returns output `index`: the value a consumer's backward reads but did not keep.
Tensor recompute_output(const Node& node, int index);

// Backpropagates from several values at once (e.g. every output of a multi-output op),
// each seeded with its gradient; gradients meeting at a shared node are summed first.
void backward(const std::vector<Var>& roots, const std::vector<Tensor>& grads);

// While alive, op calls record (enabled) or not; the previous mode returns at its end.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};
bool grad_enabled();

// Op calls record nothing (evaluation, optimizer arithmetic).
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// Op calls record again inside a NoGradGuard (one op whose backward must run at once, in an
// otherwise unrecorded pass).
class EnableGradGuard : public GradModeGuard {
 public:
  EnableGradGuard() : GradModeGuard(true) {}
};

// While alive, these leaves do not require a gradient: ops still record the path to other
// leaves (e.g. architecture weights) but no backward kernel forms their gradients.
class FreezeGuard {
 public:
  explicit FreezeGuard(const std::vector<Var>& vars);
  ~FreezeGuard();
  FreezeGuard(const FreezeGuard&) = delete;
  FreezeGuard& operator=(const FreezeGuard&) = delete;

 private:
  std::vector<Var> vars_;
  std::vector<bool> previous_;
};

}  // namespace cellgraph
