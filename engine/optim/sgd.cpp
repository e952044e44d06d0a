#include "engine/optim/sgd.h"

#include <cmath>

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
    for (size_t i = 0; i < params_.size(); ++i) momentum_[i] = Tensor::zeros(params_[i].shape());
  }
}

void Sgd::step() {
  const float lr = lr_;
  const float mom = options_.momentum;
  const float wd = options_.weight_decay;
  const bool nesterov = options_.nesterov;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor grad = grad_for_step(i);
    if (!grad.defined()) continue;  // the sparse-search rule: untouched, state included
    float* w = params_[i].value().data();
    const float* g_in = grad.data();
    const int64_t n = grad.numel();
    if (mom == 0.0f) {
#pragma omp parallel for if (n > detail::kOptimParallelThreshold)
      for (int64_t k = 0; k < n; ++k) w[k] -= lr * (g_in[k] + wd * w[k]);
    } else {
      float* buf = momentum_[i].data();
      // PyTorch starts the buffer at the first gradient rather than decaying a zero buffer.
      const bool first = steps_[i] == 0;
#pragma omp parallel for if (n > detail::kOptimParallelThreshold)
      for (int64_t k = 0; k < n; ++k) {
        const float g = g_in[k] + wd * w[k];
        const float b = first ? g : mom * buf[k] + g;
        buf[k] = b;
        w[k] -= lr * (nesterov ? g + mom * b : b);
      }
    }
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
