// MiLeNAS (He, Wang, Zhang, Chen, CVPR 2020), mixed-level first-order architecture update:
//   g_alpha = dL_val/dalpha + lambda * dL_train/dalpha,  both at the current weights,
// then Adam on alpha. The weights follow with the usual SGD step on L_train.
#include "algorithms/search_step.h"
#include "ops/ops.h"

namespace cellgraph::algorithms {

void update_architecture_mixed_level(StepContext& ctx) {
  FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture step: no dw
  ctx.arch_optimizer.zero_grad();
  forward_loss(ctx, ctx.val, softmax_coefficients(ctx.arch), false).backward();
  // The second backward adds lambda * dL_train/dalpha to the gradients already there; the
  // train loss is not counted in the step's metrics (the weight pass reports it).
  const StepMetrics keep = ctx.metrics;
  const Var train_loss = forward_loss(ctx, ctx.train, softmax_coefficients(ctx.arch), true);
  ctx.metrics = keep;
  train_loss.backward(Tensor::full({1}, ctx.options.milenas_lambda));
  ctx.arch_optimizer.step();
}

}  // namespace cellgraph::algorithms
