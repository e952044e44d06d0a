#include "engine/optim/optimizer.h"

#include <cmath>
#include <map>
#include <set>

#include "engine/error.h"

namespace cellgraph {

Optimizer::Optimizer(std::vector<Var> params, float lr, std::string kind)
    : params_(std::move(params)), lr_(lr), kind_(std::move(kind)) {
  set_lr(lr);
  std::set<std::string> seen;
  std::set<const VarImpl*> seen_vars;
  keys_.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i];
    if (!p.defined() || !p.value().defined())
      throw error(kind_, ": parameter ", i, " is undefined; expected a leaf Var with a value");
    std::string key = p.name().empty() ? "param" + std::to_string(i) : p.name();
    // Our parameters are created contiguous; a strided view here is a bug in the caller.
    CG_ASSERT(p.value().is_contiguous(), "parameter '", key, "' is a non-contiguous view");
    // Listed twice, a parameter would be stepped twice per step().
    if (!seen_vars.insert(p.impl().get()).second)
      throw error(kind_, ": parameter '", key, "' is listed twice; expected each once");
    if (!seen.insert(key).second)
      throw error(kind_, ": two parameters are named '", key,
                  "'; expected unique names (they key the optimizer state in checkpoints)");
    keys_.push_back(std::move(key));
  }
}

void Optimizer::zero_grad() {
  for (Var& p : params_) p.zero_grad();
}

void Optimizer::set_lr(float lr) {
  if (!(lr >= 0.0f) || !std::isfinite(lr))
    throw error(kind_, ": learning rate ", lr, " is invalid; expected a finite value >= 0");
  lr_ = lr;
}

Tensor Optimizer::grad_for_step(size_t i) const {
  const Var& p = params_[i];
  if (!p.has_grad()) return Tensor();
  const Tensor& g = p.grad();
  if (g.device() != p.device())
    throw error(kind_, ": the gradient of '", keys_[i], "' is on ", device_name(g.device()),
                ", the parameter on ", device_name(p.device()), "; expected one device");
  CG_ASSERT(g.shape() == p.shape(), "gradient of '", keys_[i], "' has shape ", g.shape().str(),
            ", parameter ", p.shape().str());
  return g.contiguous();
}

std::vector<Tensor> Optimizer::checked_state(const StateTensors& state,
                                             const std::vector<StateSpec>& expected,
                                             const std::string& source) const {
  std::map<std::string, Tensor> given;
  for (const auto& [key, tensor] : state) {
    if (!given.emplace(key, tensor).second)
      throw error(source, ": ", kind_, " state entry '", key, "' appears twice");
  }
  std::set<std::string> wanted;
  std::vector<Tensor> out;
  out.reserve(expected.size());
  for (const StateSpec& spec : expected) {
    wanted.insert(spec.key);
    auto it = given.find(spec.key);
    if (it == given.end())
      throw error(source, ": missing ", kind_, " state entry '", spec.key, "'; expected ",
                  spec.shape.str());
    const Tensor& t = it->second;
    if (!t.defined() || t.shape() != spec.shape)
      throw error(source, ": ", kind_, " state entry '", spec.key, "' has shape ",
                  t.defined() ? t.shape().str() : std::string("(undefined)"), "; expected ",
                  spec.shape.str());
    out.push_back(t);
  }
  for (const auto& [key, tensor] : state) {
    if (!wanted.count(key))
      throw error(source, ": unexpected ", kind_, " state entry '", key,
                  "'; expected only entries for this optimizer's parameters");
  }
  return out;
}

Tensor step_count_tensor(int64_t steps) {
  CG_ASSERT(steps >= 0 && steps <= (int64_t{1} << 24), "step count ", steps,
            " is not exact in a float32 checkpoint entry");
  return Tensor::full({1}, static_cast<float>(steps));
}

int64_t step_count_from(const Tensor& t, const std::string& key, const std::string& source) {
  const float v = t.item();
  if (!(v >= 0.0f) || v > static_cast<float>(1 << 24) || std::floor(v) != v)
    throw error(source, ": state entry '", key, "' holds ", v,
                "; expected a step count (an integer >= 0)");
  return static_cast<int64_t>(v);
}

}  // namespace cellgraph
