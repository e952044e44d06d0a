#include "engine/ir/parameter_store.h"

#include <cmath>

#include "engine/backends/backend.h"
#include "engine/tensor/random.h"

namespace cellgraph::ir {

ParameterStore::ParameterStore(const Graph& graph, uint64_t seed, Device device) : device_(device) {
  backend_for(device);  // an unavailable device is an error before any work
  Rng rng(seed);
  vars_.reserve(graph.params.size());
  for (const Parameter& p : graph.params) {
    Tensor t;
    switch (p.init) {
      case Init::kaiming_uniform:
        t = kaiming_uniform(p.shape, rng);
        break;
      case Init::fan_in_uniform: {
        const float bound = 1.0f / std::sqrt(float(p.fan_in));
        t = uniform_tensor(p.shape, -bound, bound, rng);
        break;
      }
      case Init::ones:
        t = Tensor::full(p.shape, 1.0f);
        break;
      case Init::zeros:
        t = Tensor::zeros(p.shape);
        break;
      case Init::constant:
        t = Tensor::full(p.shape, float(p.init_value));
        break;
    }
    vars_.emplace_back(t.to(device), !p.is_buffer, p.name);
  }
}

void ParameterStore::move_to(Device device) {
  if (device == device_) return;
  for (Var& v : vars_) v = Var(v.value().to(device), v.requires_grad(), v.name());
  device_ = device;
}

ParameterStore ParameterStore::clone() const {
  ParameterStore out;
  out.device_ = device_;
  out.vars_.reserve(vars_.size());
  for (const Var& v : vars_) out.vars_.emplace_back(v.value().clone(), v.requires_grad(), v.name());
  return out;
}

std::vector<Var> ParameterStore::weights() const {
  std::vector<Var> out;
  for (const Var& v : vars_)
    if (v.requires_grad()) out.push_back(v);
  return out;
}

}  // namespace cellgraph::ir
