// The trained weights and BN buffers of a compiled graph, one Var per ir::Parameter
// (same order). Weights require a gradient; buffers never do. Initialisation is a pure
// function of the seed, so two stores built with one seed are bit-identical, on any
// device: values are drawn on the host and then copied to the store's device.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"

namespace cellgraph::ir {

class ParameterStore {
 public:
  // Throws Error (backend_for's) when `device` is not available, before drawing anything.
  ParameterStore(const Graph& graph, uint64_t seed, Device device = Device::cpu);

  // An independent copy (values cloned, same names): a second network on the same graph
  // (RARTS keeps one beside the search's own).
  ParameterStore clone() const;

  const Var& operator[](ParamId id) const { return vars_[id.index()]; }
  const std::vector<Var>& all() const { return vars_; }
  // The weights that take gradients (buffers excluded), e.g. for an optimizer.
  std::vector<Var> weights() const;
  Device device() const { return device_; }
  // Moves every weight and buffer to `device` (a loaded network run elsewhere). Call it
  // before anything (an optimizer, a tape) holds the variables: they are replaced.
  void move_to(Device device);

 private:
  ParameterStore() = default;
  std::vector<Var> vars_;
  Device device_;
};

}  // namespace cellgraph::ir
