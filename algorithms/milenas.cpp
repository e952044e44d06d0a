// MiLeNAS (He, Wang, Zhang, Chen, CVPR 2020), mixed-level first-order architecture update:
//   g_alpha = dL_val/dalpha + lambda * dL_train/dalpha,  both at the current weights,
// then Adam on alpha. The weights follow with the usual SGD step on L_train.
#include "algorithms/milenas.h"

#include "algorithms/algorithm.h"
#include "ops/ops.h"

namespace cellgraph::algorithms {

void update_architecture_mixed_level(StepContext& ctx) {
  FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture step: no dw
  ctx.arch_optimizer.zero_grad();
  forward_loss(ctx, ctx.val, relaxed_coefficients(ctx.arch), false).backward();
  // The second backward adds lambda * dL_train/dalpha to the gradients already there; the
  // train loss is not counted in the step's metrics (the weight pass reports it).
  const StepMetrics keep = ctx.metrics;
  const Var train_loss = forward_loss(ctx, ctx.train, relaxed_coefficients(ctx.arch), true);
  ctx.metrics = keep;
  train_loss.backward(
      Tensor::full({1}, float(ctx.hyper.number("milenas-lambda")), train_loss.device()));
  ctx.arch_optimizer.step();
}

namespace {
class Milenas final : public Algorithm {
 public:
  Milenas()
      : Algorithm("milenas",
                  "MiLeNAS, mixed level: alpha by Adam on dL_val/dalpha + lambda * "
                  "dL_train/dalpha") {}
  std::vector<Hyperparameter> hyperparameters() const override {
    return {number("milenas-lambda", 1, 0, 1e30, "weight lambda of dL_train/dalpha",
                   "MiLeNAS' lambda; 1 in the authors' code")};
  }
  std::vector<NamedPass> passes() const override {
    return {{"update_architecture_mixed_level", update_architecture_mixed_level},
            {"update_weights", update_weights}};
  }
};
}  // namespace

const Algorithm& milenas_algorithm() {
  static const Milenas kMilenas;
  return kMilenas;
}

}  // namespace cellgraph::algorithms
