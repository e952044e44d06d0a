#include "engine/optim/adam.h"

#include <cmath>

#include "engine/backends/vector_ops.h"
#include "engine/error.h"

namespace cellgraph {

namespace {
void require_unit_interval(const char* what, float value) {
  if (!(value >= 0.0f && value < 1.0f))
    throw error("adam: ", what, " ", value, " is invalid; expected a value in [0, 1)");
}
}  // namespace

Adam::Adam(std::vector<Var> params, AdamOptions options)
    : Optimizer(std::move(params), options.lr, "adam"), options_(options) {
  require_unit_interval("beta1", options_.beta1);
  require_unit_interval("beta2", options_.beta2);
  if (!(options_.eps >= 0.0f) || !std::isfinite(options_.eps))
    throw error("adam: eps ", options_.eps, " is invalid; expected a value >= 0");
  if (!(options_.weight_decay >= 0.0f) || !std::isfinite(options_.weight_decay))
    throw error("adam: weight decay ", options_.weight_decay, " is invalid; expected a value >= 0");
  for (const Var& p : params_) {
    m_.push_back(Tensor::zeros(p.shape(), p.device()));
    v_.push_back(Tensor::zeros(p.shape(), p.device()));
  }
  steps_.assign(params_.size(), 0);
}

void Adam::step() {
  const float b1 = options_.beta1;
  const float b2 = options_.beta2;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor grad = grad_for_step(i);
    if (!grad.defined()) continue;  // the sparse-search rule: untouched, t included
    const int64_t t = ++steps_[i];
    // Scalars in double then rounded once, as PyTorch computes them in Python floats.
    const double bias1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(t));
    const double bias2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(t));
    vec::adam_step(params_[i].value(), grad, m_[i], v_[i],
                   AdamStep{.beta1 = b1,
                            .beta2 = b2,
                            .eps = options_.eps,
                            .weight_decay = options_.weight_decay,
                            .step_size = static_cast<float>(lr_ / bias1),
                            .bias2_sqrt = static_cast<float>(std::sqrt(bias2))});
  }
}

StateTensors Adam::state_tensors() const {
  StateTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(keys_[i] + "/step", step_count_tensor(steps_[i]));
    out.emplace_back(keys_[i] + "/adam_m", m_[i].clone());
    out.emplace_back(keys_[i] + "/adam_v", v_[i].clone());
  }
  return out;
}

void Adam::load_state_tensors(const StateTensors& state, const std::string& source) {
  std::vector<StateSpec> specs;
  for (size_t i = 0; i < params_.size(); ++i) {
    specs.push_back({keys_[i] + "/step", Shape{1}});
    specs.push_back({keys_[i] + "/adam_m", params_[i].shape()});
    specs.push_back({keys_[i] + "/adam_v", params_[i].shape()});
  }
  const std::vector<Tensor> loaded = checked_state(state, specs, source);
  // Read every step count before changing anything so a bad checkpoint changes nothing.
  std::vector<int64_t> counts(params_.size());
  for (size_t i = 0; i < params_.size(); ++i)
    counts[i] = step_count_from(loaded[3 * i], specs[3 * i].key, source);
  steps_ = counts;
  for (size_t i = 0; i < params_.size(); ++i) {
    m_[i].copy_from(loaded[3 * i + 1]);
    v_[i].copy_from(loaded[3 * i + 2]);
  }
}

}  // namespace cellgraph
