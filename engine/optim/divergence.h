// Stopping a run at the step where it diverges.
//
// A learning rate that is too large turns the loss into inf or NaN within a few steps,
// and from then on every weight, architecture parameter and derived architecture is
// garbage: a search that carries on exits 0 with a genotype picked from NaN weights. The
// run loops check the step's loss, gradient norm and architecture parameters after every
// step and throw a user error naming the step, the quantity and what to change, before
// anything of that step is logged or checkpointed, so the last checkpoint stays the last
// good state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/autodiff/var.h"

namespace cellgraph {

// True when every element of a tensor is finite (an undefined tensor is); on its device.
bool all_finite(const Tensor& t);

// Throws Error "step S: the QUANTITY is VALUE: the run diverged; HINT" unless `value` is
// finite. `step` is 1-based (the step that produced the value).
void require_finite(int64_t step, const std::string& quantity, double value,
                    const std::string& hint);
// The same for every element of each variable's value, naming the first offending one.
void require_finite(int64_t step, const std::string& quantity, const std::vector<Var>& vars,
                    const std::string& hint);

}  // namespace cellgraph
