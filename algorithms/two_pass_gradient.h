// The architecture gradient of a step whose forward runs candidates that the backward does
// not go through (NASP's architecture step: every candidate forward at the one-hot A_bar,
// the selected ones with their history, the others forward-only for <dL/dy, o_k> alone),
// formed in two passes so that the forward-only outputs are never all kept at once.
//
// One pass keeps every forward-only output until its sum's backward forms the coefficient
// gradient: 720 outputs of the DARTS network at batch 64, most of NASP's peak memory. Two
// passes: (1) the network with the selected candidates only (the others contribute 0 to
// the sums, so the loss is the same), backpropagated, with the loss's gradient tapped at
// every weighted sum and the selected terms' coefficient gradients formed; (2) under
// no_grad, the forward-only candidates alone (sched::make_forward_only_plan) on the edge
// inputs pass (1) kept, each output giving its coefficient's gradient from the tapped one
// as soon as it exists (sched/executor.cpp, EarlyDot), read from cache, and then dropped.
// No op runs twice, and each batch norm's running statistics move once, in the pass that
// runs it, as with one pass. (Before the cut, pass (2) ran the selected network again:
// 0.15 s of a ~1.9 s NASP step on the DARTS network, batch 64, 1 thread.) Where the cut
// does not apply, pass (2) runs every candidate again and pass (1) only taps the gradients.
#pragma once

#include <vector>

#include "algorithms/step_context.h"

namespace cellgraph::algorithms {

// The val-side loss at `coefficients` (which want a gradient; it accumulates in them) with
// the candidates of `selected` active and those of `with_forward_only` marked kForwardOnly
// run forward-only; leaves ctx.arch.active at `with_forward_only`. A sum the selected
// network lacks (a recurrent node's edge the node projection dropped) takes the gradient
// tapped at its one reader, the node's add_n. Returns false, having run nothing, where the
// two passes do not apply (a loss model instead of the network, or a sum with neither, as
// a sum of `none` ops only): then run the one pass.
bool coefficient_gradient_two_pass(StepContext& ctx, const Batch& batch,
                                   const std::vector<Var>& coefficients,
                                   const sched::ActiveSet& selected,
                                   const sched::ActiveSet& with_forward_only);

}  // namespace cellgraph::algorithms
