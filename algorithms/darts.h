// DARTS' architecture passes (first and second order), exposed for tests.
#pragma once

#include "algorithms/step_context.h"

namespace cellgraph::algorithms {

void update_architecture_first_order(StepContext& ctx);   // Adam on dL_val/dalpha
void update_architecture_second_order(StepContext& ctx);  // Adam on the unrolled gradient
// The second-order DARTS gradient alone, left in the logits' grad() (for tests).
void second_order_gradient(StepContext& ctx);

}  // namespace cellgraph::algorithms
