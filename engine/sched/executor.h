// Runs a Plan: each planned node becomes one ops::apply call (so autodiff records exactly
// the ops that ran), values are released after their last reader, BN and dropout follow
// the training flag, and summing nodes sum only their present inputs.
#pragma once

#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/plan.h"

namespace cellgraph::sched {

struct RunOptions {
  bool training = true;
  // One [rows, columns] matrix per architecture group (e.g. softmax of the logits);
  // may require a gradient. Ignored for graphs without groups.
  std::vector<Var> coefficients;
  uint64_t dropout_seed = 0;
};

// Returns the logits [batch, classes].
Var run(const ir::Graph& graph, const ir::ParameterStore& params, const Plan& plan,
        const Var& images, const RunOptions& options);

}  // namespace cellgraph::sched
