// Weight optimizers: the shared base and the helpers the concrete optimizers (sgd.h,
// adam.h) use. Gradient clipping is in clip.h, learning-rate schedules in schedule.h.
//
// The rule sparse search depends on: a parameter whose grad() is undefined when step() runs
// is left exactly untouched. Its value, its momentum / moment buffers and its step count
// keep their bits, so a candidate op outside this step's active set does not drift through
// weight decay or momentum. zero_grad() therefore makes gradients undefined rather than
// zero; a zero gradient is a real gradient and does move the parameter (decay, momentum).
//
// Parameters and gradients are float32 tensors on any device; each parameter's buffers
// live on its device, and the arithmetic is the backend's vector operations
// (engine/backends/vector_ops.h), so an optimizer runs wherever its parameters are.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/tensor/tensor.h"

namespace cellgraph {

// Named optimizer buffers for checkpoints: "<param name>/<buffer>".
using StateTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient; see the rule above.
  virtual void step() = 0;
  // Makes every parameter's gradient undefined (Var::zero_grad).
  void zero_grad();

  float lr() const { return lr_; }
  void set_lr(float lr);  // a schedule calls this before step(); lr >= 0

  const std::vector<Var>& params() const { return params_; }
  // The checkpoint name of params()[i]: its Var name, or "param<i>" when it has none.
  const std::string& param_key(size_t i) const { return keys_[i]; }

  // Copies of every buffer, named "<param key>/<buffer>". A per-parameter step count is a
  // one-element tensor holding an integer (exact below 2^24 steps). Hyperparameters and
  // the learning rate are not state: they come from the options and the schedule.
  virtual StateTensors state_tensors() const = 0;
  // Restores what state_tensors() returned. Every expected entry must be present with the
  // same shape and no unknown entry may appear; otherwise throws cellgraph::Error naming
  // the entry, and the optimizer is left unchanged. `source` names the checkpoint in
  // messages.
  virtual void load_state_tensors(const StateTensors& state,
                                  const std::string& source = "optimizer state") = 0;

 protected:
  // Throws cellgraph::Error when a parameter is undefined, listed twice, or when two
  // parameters share a checkpoint name. `kind` ("sgd", "adam") prefixes messages.
  Optimizer(std::vector<Var> params, float lr, std::string kind);

  // The gradient of params_[i] ready for arithmetic: undefined when it has none, else a
  // contiguous tensor of the parameter's shape on its device (throws Error for a gradient
  // on another device).
  Tensor grad_for_step(size_t i) const;

  // Checks `state` holds exactly the entries named in `expected`, each with its shape, and
  // returns them in the order of `expected`. Throws Error naming the first bad entry.
  struct StateSpec {
    std::string key;
    Shape shape;
  };
  std::vector<Tensor> checked_state(const StateTensors& state,
                                    const std::vector<StateSpec>& expected,
                                    const std::string& source) const;

  std::vector<Var> params_;
  std::vector<std::string> keys_;
  float lr_;
  std::string kind_;
};

// Step counts live in one-element float tensors for checkpoints.
Tensor step_count_tensor(int64_t steps);
// Reads a step count back; throws Error naming `key` when it is not a non-negative integer.
int64_t step_count_from(const Tensor& t, const std::string& key, const std::string& source);

}  // namespace cellgraph
