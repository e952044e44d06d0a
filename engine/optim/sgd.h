// Stochastic gradient descent with momentum, PyTorch's torch.optim.SGD without dampening:
//   g   = grad + weight_decay * w
//   buf = g on the parameter's first step, else momentum * buf + g
//   d   = g + momentum * buf (nesterov) or buf
//   w  -= lr * d
// With momentum 0 there is no buffer and d = g. Parameters without a gradient this step
// are untouched, their buffer and step count included (see optimizer.h).
#pragma once

#include "engine/optim/optimizer.h"

namespace cellgraph {

// Defaults are the DARTS weight optimizer's (docs/algorithms.md; the cosine schedule takes lr
// from 0.025 to 0.001 and gradients are clipped at 5).
struct SgdOptions {
  float lr = 0.025f;
  float momentum = 0.9f;
  float weight_decay = 3e-4f;
  bool nesterov = false;
};

class Sgd final : public Optimizer {
 public:
  // Throws cellgraph::Error for a negative momentum or weight decay, nesterov without
  // momentum, or a parameter the base class rejects.
  explicit Sgd(std::vector<Var> params, SgdOptions options = {});

  void step() override;
  const SgdOptions& options() const { return options_; }
  // Parameter i's momentum buffer (zeros before its first step; undefined when momentum is
  // 0), read by second-order DARTS for w' = w - xi * (momentum * buf + grad + wd * w).
  const Tensor& momentum_buffer(size_t i) const { return momentum_[i]; }
  int64_t step_count(size_t i) const { return steps_[i]; }

  // Entries per parameter: "<key>/step", and "<key>/momentum" when momentum != 0 (zeros
  // until the parameter's first step).
  StateTensors state_tensors() const override;
  void load_state_tensors(const StateTensors& state,
                          const std::string& source = "optimizer state") override;

 private:
  SgdOptions options_;
  std::vector<Tensor> momentum_;  // per parameter; undefined when options_.momentum == 0
  std::vector<int64_t> steps_;    // per parameter: steps that reached it
};

}  // namespace cellgraph
