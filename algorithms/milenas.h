// MiLeNAS' architecture pass, exposed for tests.
#pragma once

#include "algorithms/step_context.h"

namespace cellgraph::algorithms {

// Adam on dL_val/dalpha + lambda * dL_train/dalpha, both at the current weights.
void update_architecture_mixed_level(StepContext& ctx);

}  // namespace cellgraph::algorithms
