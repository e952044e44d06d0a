#include "engine/optim/sgd.h"

#include <cmath>

#include "engine/backends/vector_ops.h"
#include "engine/error.h"

namespace cellgraph {

Sgd::Sgd(std::vector<Var> params, SgdOptions options)
    : Optimizer(std::move(params), options.lr, "sgd"), options_(options) {
  if (!(options_.momentum >= 0.0f) || !std::isfinite(options_.momentum))
    throw error("sgd: momentum ", options_.momentum, " is invalid; expected a value >= 0");
  if (!(options_.weight_decay >= 0.0f) || !std::isfinite(options_.weight_decay))
    throw error("sgd: weight decay ", options_.weight_decay, " is invalid; expected a value >= 0");
  if (options_.nesterov && options_.momentum == 0.0f)
    throw error("sgd: nesterov needs momentum; expected momentum > 0");
  momentum_.resize(params_.size());
  steps_.assign(params_.size(), 0);
  if (options_.momentum != 0.0f) {
    for (size_t i = 0; i < params_.size(); ++i)
      momentum_[i] = Tensor::zeros(params_[i].shape(), params_[i].device());
  }
}

void Sgd::step() {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor grad = grad_for_step(i);
    if (!grad.defined()) continue;  // the sparse-search rule: untouched, state included
    vec::sgd_step(params_[i].value(), grad, momentum_[i],
                  SgdStep{.lr = lr_,
                          .momentum = options_.momentum,
                          .weight_decay = options_.weight_decay,
                          .nesterov = options_.nesterov,
                          .first = steps_[i] == 0});
    ++steps_[i];
  }
}

StateTensors Sgd::state_tensors() const {
  StateTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(keys_[i] + "/step", step_count_tensor(steps_[i]));
    if (momentum_[i].defined()) out.emplace_back(keys_[i] + "/momentum", momentum_[i].clone());
  }
  return out;
}

void Sgd::load_state_tensors(const StateTensors& state, const std::string& source) {
  std::vector<StateSpec> specs;
  for (size_t i = 0; i < params_.size(); ++i) {
    specs.push_back({keys_[i] + "/step", Shape{1}});
    if (momentum_[i].defined()) specs.push_back({keys_[i] + "/momentum", params_[i].shape()});
  }
  const std::vector<Tensor> loaded = checked_state(state, specs, source);
  // Read every step count before changing anything so a bad checkpoint changes nothing.
  std::vector<int64_t> counts(params_.size());
  for (size_t i = 0, s = 0; i < params_.size(); ++i, ++s) {
    counts[i] = step_count_from(loaded[s], specs[s].key, source);
    if (momentum_[i].defined()) ++s;
  }
  steps_ = counts;
  for (size_t i = 0, s = 0; i < params_.size(); ++i, ++s) {
    if (momentum_[i].defined()) momentum_[i].copy_from(loaded[++s]);
  }
}

}  // namespace cellgraph
