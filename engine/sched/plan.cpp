#include "engine/sched/plan.h"

#include <variant>

#include "engine/error.h"

namespace cellgraph::sched {

using ir::Node;
using ir::ValueId;

ActiveSet all_active(const ir::Graph& graph) { return ActiveSet(graph.candidates.size(), 1); }

namespace {
// Appends node `id` to the plan's order; its inputs' last use is now there.
void schedule(Plan& plan, const ir::Graph& graph, ir::NodeId id) {
  const auto pos = static_cast<int32_t>(plan.order.size());
  plan.order.push_back(id);
  for (ValueId in : graph.node(id).inputs)
    if (in.valid()) plan.last_use[in.index()] = pos;
}
}  // namespace

bool input_summed(const Plan& plan, const Node& n, size_t i) {
  if (i >= n.input_candidates.size()) return true;  // weighted_sum's coefficient matrix
  const ir::CandidateId c = n.input_candidates[i];
  if (c.valid() && !plan.active[c.index()]) return false;
  return !plan.absent[n.inputs[i].index()];
}

Plan make_plan(const ir::Graph& graph, const ActiveSet& active) {
  CG_ASSERT(active.size() == graph.candidates.size(), "active set of ", active.size(), " for ",
            graph.candidates.size(), " candidates");
  Plan plan;
  plan.active = active;
  plan.absent.assign(graph.values.size(), 0);
  std::vector<uint8_t> runs(graph.nodes.size(), 0);

  // Forward: which nodes can produce anything.
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    bool run = true;
    if (n.candidate.valid() || n.absent_with_input) {
      if (n.candidate.valid())
        run = active[n.candidate.index()] != 0 &&
              graph.candidate(n.candidate).op != cellgraph::Candidate::none &&
              graph.candidate(n.candidate).op != cellgraph::Candidate::rnn_none;
      for (ValueId in : n.inputs)
        if (in.valid() && plan.absent[in.index()]) run = false;
    } else if (n.drops_absent_inputs) {
      run = false;
      for (size_t k = 0; k < n.input_candidates.size(); ++k) run = run || input_summed(plan, n, k);
    }
    runs[i] = run;
    if (!run)
      for (ValueId out : n.outputs) plan.absent[out.index()] = 1;
  }

  // Backward: keep only nodes whose outputs reach the logits.
  std::vector<uint8_t> live(graph.values.size(), 0);
  live[graph.logits.index()] = 1;
  // A training graph's auxiliary head is a second output (graph.h).
  if (graph.aux_logits.valid()) live[graph.aux_logits.index()] = 1;
  // So is a recurrent network's carried state, read by the next batch.
  if (graph.state_out.valid()) live[graph.state_out.index()] = 1;
  std::vector<uint8_t> needed(graph.nodes.size(), 0);
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    if (!runs[i]) continue;
    const Node& n = graph.nodes[i];
    bool any = false;
    for (ValueId out : n.outputs) any = any || live[out.index()];
    if (!any) continue;
    needed[i] = 1;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!n.inputs[k].valid()) continue;
      if (n.drops_absent_inputs && !input_summed(plan, n, k)) continue;
      live[n.inputs[k].index()] = 1;
    }
  }

  plan.last_use.assign(graph.values.size(), -1);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (!needed[i]) {
      ++plan.skipped_nodes;
      continue;
    }
    schedule(plan, graph, ir::NodeId{static_cast<int32_t>(i)});
  }
  CG_ASSERT(!plan.absent[graph.logits.index()], "the logits are absent under this active set");
  return plan;
}

std::optional<Plan> make_forward_only_plan(const ir::Graph& graph, const Plan& full,
                                           const Plan& first) {
  Plan plan;
  plan.active = full.active;  // the active candidates are first's: their terms leave the sums
  for (uint8_t& a : plan.active)
    if (a != kForwardOnly) a = kInactive;
  plan.absent.assign(graph.values.size(), 1);
  plan.given.assign(graph.values.size(), 0);
  std::vector<uint8_t> computed(graph.values.size(), 0);  // by first
  for (ir::NodeId id : first.order)
    for (ValueId out : graph.node(id).outputs) computed[out.index()] = !first.absent[out.index()];

  auto forward_only_term = [&](const Node& n, size_t k) {
    return k < n.input_candidates.size() && n.input_candidates[k].valid() &&
           full.active[n.input_candidates[k].index()] == kForwardOnly && input_summed(full, n, k);
  };
  // Backward over full's order: which nodes run, and which values they read.
  std::vector<uint8_t> runs(full.order.size(), 0), read(graph.values.size(), 0);
  for (size_t p = full.order.size(); p-- > 0;) {
    const Node& n = graph.node(full.order[p]);
    bool run = n.candidate.valid() && full.active[n.candidate.index()] == kForwardOnly;
    const bool weighted = std::holds_alternative<WeightedSumAttrs>(n.attrs);
    bool terms = false;
    for (size_t k = 0; weighted && k < n.inputs.size(); ++k)
      terms = terms || forward_only_term(n, k);
    bool wanted = false;
    for (ValueId out : n.outputs) wanted = wanted || (read[out.index()] && !computed[out.index()]);
    if (weighted && wanted && !terms) return std::nullopt;
    run = run || terms || wanted;
    if (!run) continue;
    runs[p] = 1;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!n.inputs[k].valid()) continue;
      if (weighted && k < n.input_candidates.size() && !forward_only_term(n, k)) continue;
      if (!weighted && n.drops_absent_inputs && !input_summed(full, n, k)) continue;
      read[n.inputs[k].index()] = 1;
    }
  }
  plan.last_use.assign(graph.values.size(), -1);
  for (size_t p = 0; p < full.order.size(); ++p) {
    if (!runs[p]) {
      ++plan.skipped_nodes;
      continue;
    }
    schedule(plan, graph, full.order[p]);
    plan.seed_position.push_back(static_cast<int32_t>(p));
    for (ValueId out : graph.node(full.order[p]).outputs)
      plan.absent[out.index()] = full.absent[out.index()];
  }
  for (size_t v = 0; v < graph.values.size(); ++v)
    if (graph.values[v].kind != ir::ValueKind::activation) {
      plan.absent[v] = full.absent[v];
    } else if (read[v] && computed[v]) {
      plan.given[v] = 1;
      plan.absent[v] = 0;
    }
  plan.skipped_nodes += full.skipped_nodes;
  return plan;
}

}  // namespace cellgraph::sched
