// ISTA-NAS one-stage: the evaluation network (every edge op closed by an affine BN, spec
// network.edge_bn) searched and trained in one run. Its passes, exposed for tests.
#pragma once

#include "algorithms/step_context.h"

namespace cellgraph::algorithms {

// recover_sparse_codes until the termination rule freezes the codes.
void recover_sparse_codes_until_converged(StepContext& ctx);
// One backward of L_train for the weights (SGD) and, until frozen, b (Adam); the edge BNs'
// gamma and beta stay at 1 and 0 until then.
void update_weights_and_codes(StepContext& ctx);

}  // namespace cellgraph::algorithms
