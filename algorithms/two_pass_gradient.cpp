#include "algorithms/two_pass_gradient.h"

#include <variant>

#include "engine/sched/executor.h"

namespace cellgraph::algorithms {

namespace {
// Every weighted sum the full pass runs is also in the selected pass, where its gradient
// can be tapped (not so for a sum of `none` ops alone, which the plan drops).
bool every_sum_tapped(const ir::Graph& graph, const sched::Plan& selected,
                      const sched::Plan& full) {
  for (ir::NodeId id : full.order) {
    const ir::Node& n = graph.node(id);
    if (std::holds_alternative<WeightedSumAttrs>(n.attrs) && selected.absent[n.outputs[0].index()])
      return false;
  }
  return true;
}
}  // namespace

bool coefficient_gradient_two_pass(StepContext& ctx, const Batch& batch,
                                   const std::vector<Var>& coefficients,
                                   const sched::ActiveSet& selected,
                                   const sched::ActiveSet& with_forward_only) {
  if (ctx.loss_model) return false;
  // Two plans per step, as with one pass and the weight step: pass (2) runs `full` itself.
  const sched::Plan full = sched::make_plan(ctx.graph, with_forward_only);
  ctx.arch.active = selected;
  if (!every_sum_tapped(ctx.graph, ctx.plan(), full)) {
    ctx.arch.active = with_forward_only;
    return false;
  }

  // (1) The selected network, the coefficients as constants (so no sum keeps its inputs).
  std::vector<Var> constants;
  constants.reserve(coefficients.size());
  for (const Var& c : coefficients) constants.push_back(c.detach());
  std::vector<Var> taps(ctx.graph.values.size());
  sched::RunOptions first = network_run_options(ctx, constants, false);
  first.update_running_stats = false;
  first.weighted_sums.taps = &taps;
  forward_loss(ctx, ctx.params, batch, first, false).backward();
  std::vector<Tensor> grads(taps.size());
  for (size_t v = 0; v < taps.size(); ++v)
    if (taps[v].defined() && taps[v].has_grad()) grads[v] = taps[v].grad();
  taps.clear();

  // (2) Every candidate again, nothing recorded but each sum's own backward.
  ctx.arch.active = with_forward_only;
  sched::RunOptions second = network_run_options(ctx, coefficients, false);
  second.weighted_sums.grads = &grads;
  const NoGradGuard no_grad;
  sched::run_outputs(ctx.graph, ctx.params, full, Var(batch.images), second);
  return true;
}

}  // namespace cellgraph::algorithms
