#include "algorithms/two_pass_gradient.h"

#include <optional>
#include <variant>

#include "engine/sched/executor.h"

namespace cellgraph::algorithms {

namespace {
// Where each weighted sum of the full pass finds the loss's gradient at its output after
// the selected pass (by value index; an invalid id for values that are not such sums): its
// own output where the selected pass runs the sum; else, where its one reader is an add_n
// the selected pass runs (a recurrent node summing its edges, an edge the node projection
// dropped), that add's output, whose gradient each term shares. Empty where some sum has
// neither (a sum of `none` ops only, which the plan drops).
std::vector<ir::ValueId> gradient_sources(const ir::Graph& graph, const sched::Plan& selected,
                                          const sched::Plan& full) {
  std::vector<std::vector<ir::NodeId>> readers(graph.values.size());
  for (ir::NodeId id : full.order)
    for (ir::ValueId in : graph.node(id).inputs)
      if (in.valid()) readers[in.index()].push_back(id);
  std::vector<ir::ValueId> source(graph.values.size());
  for (ir::NodeId id : full.order) {
    const ir::Node& n = graph.node(id);
    if (!std::holds_alternative<WeightedSumAttrs>(n.attrs)) continue;
    const ir::ValueId out = n.outputs[0];
    if (!selected.absent[out.index()]) {
      source[out.index()] = out;
      continue;
    }
    const std::vector<ir::NodeId>& r = readers[out.index()];
    if (r.size() != 1 || graph.node(r[0]).op != OpKind::add_n) return {};
    const ir::ValueId sum = graph.node(r[0]).outputs[0];
    if (selected.absent[sum.index()]) return {};
    source[out.index()] = sum;
  }
  return source;
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
  const std::vector<ir::ValueId> source = gradient_sources(ctx.graph, ctx.plan(), full);
  if (source.empty()) {
    ctx.arch.active = with_forward_only;
    return false;
  }
  std::vector<uint8_t> also_tap(ctx.graph.values.size(), 0);
  for (size_t v = 0; v < source.size(); ++v)
    if (source[v].valid() && source[v].index() != v) also_tap[source[v].index()] = 1;
  // Pass (2) cut to the forward-only candidates where it can be (sched/plan.h): then pass
  // (1) keeps what they read, forms the active terms' coefficient gradients and updates
  // the running statistics of the batch norms it runs.
  const std::optional<sched::Plan> cut = sched::make_forward_only_plan(ctx.graph, full, ctx.plan());

  // (1) The selected network; without the cut, the coefficients as constants (so no sum
  // keeps its inputs) and pass (2) forms every coefficient gradient.
  std::vector<Var> constants;
  if (!cut) {
    constants.reserve(coefficients.size());
    for (const Var& c : coefficients) constants.push_back(c.detach());
  }
  std::vector<Var> taps(ctx.graph.values.size()), kept(ctx.graph.values.size());
  sched::RunOptions first = network_run_options(ctx, cut ? coefficients : constants, false);
  first.update_running_stats = cut.has_value();
  first.weighted_sums.taps = &taps;
  first.weighted_sums.also_tap = &also_tap;
  if (cut) {
    first.keep = &kept;
    first.keep_mask = &cut->given;
  }
  forward_loss(ctx, ctx.params, batch, first, false).backward();
  std::vector<Tensor> grads(taps.size());
  for (size_t v = 0; v < source.size(); ++v) {
    if (!source[v].valid()) continue;
    const Var& tap = taps[source[v].index()];
    if (tap.defined() && tap.has_grad()) grads[v] = tap.grad();
  }
  taps.clear();

  // (2) The forward-only candidates (or every candidate again), nothing recorded but each
  // sum's own backward.
  ctx.arch.active = with_forward_only;
  sched::RunOptions second = network_run_options(ctx, coefficients, false);
  second.weighted_sums.grads = &grads;
  second.given = &kept;
  const NoGradGuard no_grad;
  sched::run_outputs(ctx.graph, ctx.params, cut ? *cut : full, Var(batch.images), second);
  return true;
}

}  // namespace cellgraph::algorithms
