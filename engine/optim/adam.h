// Adam, PyTorch's torch.optim.Adam (amsgrad off): L2 weight decay joins the gradient and
// bias correction uses a per-parameter step count t (steps that reached that parameter):
//   g  = grad + weight_decay * w
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   w -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Parameters without a gradient this step are untouched, moments and t included (see
// optimizer.h): an op outside the active set resumes with its own bias correction.
#pragma once

#include "engine/optim/optimizer.h"

namespace cellgraph {

// Defaults are the DARTS architecture optimizer's (docs/algorithms.md).
struct AdamOptions {
  float lr = 3e-4f;
  float beta1 = 0.5f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 1e-3f;
};

class Adam final : public Optimizer {
 public:
  // Throws cellgraph::Error for betas outside [0, 1), a negative eps or weight decay, or a
  // parameter the base class rejects.
  explicit Adam(std::vector<Var> params, AdamOptions options = {});

  void step() override;
  const AdamOptions& options() const { return options_; }
  int64_t step_count(size_t i) const { return steps_[i]; }  // steps that reached param i

  // Entries per parameter: "<key>/step", "<key>/adam_m", "<key>/adam_v".
  StateTensors state_tensors() const override;
  void load_state_tensors(const StateTensors& state,
                          const std::string& source = "optimizer state") override;

 private:
  AdamOptions options_;
  std::vector<Tensor> m_;       // first moment, per parameter
  std::vector<Tensor> v_;       // second moment, per parameter
  std::vector<int64_t> steps_;  // per parameter: steps that reached it
};

}  // namespace cellgraph
