#include "engine/sched/executor.h"

#include "engine/backends/backend.h"
#include "engine/backends/vector_ops.h"
#include "engine/error.h"
#include "ops/ops.h"

namespace cellgraph::sched {

using ir::Node;
using ir::ValueId;
using ir::ValueKind;

namespace {
// Attributes as they run this step: BN and dropout follow the training flag.
Attrs runtime_attrs(const Node& n, const RunOptions& options, size_t position) {
  Attrs a = n.attrs;
  if (auto* bn = std::get_if<BatchNormAttrs>(&a)) {
    bn->training = options.training;
    // running = 1 * running + 0 * batch: exactly unchanged.
    if (!options.update_running_stats) bn->momentum = 0.0f;
  }
  if (auto* d = std::get_if<DropoutAttrs>(&a)) {
    d->training = options.training;
    // Keyed nodes share a mask: their seed comes from the key, in a range (bit 63 set)
    // that no node position reaches.
    d->seed = options.dropout_seed * 0x9E3779B97F4A7C15ull +
              (d->mask_key != 0 ? (1ull << 63) + uint64_t(uint32_t(d->mask_key)) : position);
  }
  if (auto* d = std::get_if<DropPathAttrs>(&a)) {
    d->p = options.drop_path_prob;
    d->training = options.training;
    d->seed = options.dropout_seed * 0x9E3779B97F4A7C15ull + position;
  }
  return a;
}

// A weighted sum whose coefficients are all exactly 1 and want no gradient: NASP's weight
// step, where the one-hot A selects one op per edge. It is a plain sum of its inputs (the
// last, the coefficient matrix, excluded).
bool sums_with_ones(const Attrs& attrs, const std::vector<Var>& inputs) {
  const auto* ws = std::get_if<WeightedSumAttrs>(&attrs);
  if (ws == nullptr) return false;
  const Var& coefficients = inputs.back();
  if ((coefficients.requires_grad() && grad_enabled()) || coefficients.device() != Device::cpu)
    return false;
  const Tensor c = coefficients.value().contiguous();
  for (size_t i = 0; i + 1 < inputs.size(); ++i)
    if (c.data()[ws->row_of(i) * c.dim(1) + ws->columns[i]] != 1.0f) return false;
  return true;
}

// Nodes that pass their first input through, as skip_connect does: no copy, nothing
// recorded. A drop_path that keeps everything (eval mode, or p = 0 in DARTS' first epoch),
// and a weighted sum left with one input whose coefficient is exactly 1 and wants no
// gradient (NASP's weight step: the sum would copy every edge's output once forward and
// once backward: 5% of that step).
bool passes_through(const Attrs& attrs, const std::vector<Var>& inputs) {
  if (const auto* d = std::get_if<DropPathAttrs>(&attrs)) return !d->training || d->p == 0.0f;
  return inputs.size() == 2 && sums_with_ones(attrs, inputs);
}

// NASP's second pass (WeightedSumHooks::grads): a forward-only term of a sum with a
// tapped gradient, whose coefficient is 0 and whose one reader is that sum, gives its
// coefficient's gradient <dy, x> as soon as it exists and is dropped, so that it is read
// while the cache still holds it rather than with the sum's other terms (up to 35 outputs
// later, by then in memory). On the CPU (vec::dot), with the coefficients as leaves.
struct EarlyDot {
  int32_t group = -1;            // the coefficient matrix; -1: none
  int64_t entry = 0;             // row * columns + column
  const Tensor* grad = nullptr;  // the loss's gradient at the sum
};

std::vector<EarlyDot> early_dots(const ir::Graph& graph, const Plan& plan,
                                 const RunOptions& options) {
  const std::vector<Tensor>* grads = options.weighted_sums.grads;
  if (grads == nullptr) return {};
  std::vector<int32_t> readers(graph.values.size(), 0);
  for (ir::NodeId id : plan.order)
    for (ValueId in : graph.node(id).inputs)
      if (in.valid()) ++readers[in.index()];
  std::vector<std::vector<float>> host(options.coefficients.size());
  std::vector<EarlyDot> out(graph.values.size());
  for (ir::NodeId id : plan.order) {
    const Node& n = graph.node(id);
    const auto* ws = std::get_if<WeightedSumAttrs>(&n.attrs);
    if (ws == nullptr || n.outputs.empty() || !(*grads)[n.outputs[0].index()].defined()) continue;
    const int32_t group = graph.value(n.inputs.back()).arch.index();
    const Var& c = options.coefficients[size_t(group)];
    if (!c.is_leaf() || !c.requires_grad() || c.device() != Device::cpu ||
        (*grads)[n.outputs[0].index()].device() != Device::cpu)
      continue;
    if (host[size_t(group)].empty()) host[size_t(group)] = c.value().to_vector();
    for (size_t k = 0; k < n.input_candidates.size(); ++k) {
      const ir::CandidateId cand = n.input_candidates[k];
      if (!cand.valid() || plan.active[cand.index()] != kForwardOnly || !input_summed(plan, n, k))
        continue;
      const ValueId in = n.inputs[k];
      const int64_t entry = int64_t(ws->row_of(k)) * c.shape()[1] + ws->columns[k];
      if (readers[in.index()] != 1 || host[size_t(group)][size_t(entry)] != 0.0f) continue;
      out[in.index()] = {group, entry, &(*grads)[n.outputs[0].index()]};
    }
  }
  return out;
}

// An absent value read by a node that needs it: zeros of its shape at this batch, on the
// batch's device.
Var zeros_like_value(const ir::Value& v, int64_t batch, Device device) {
  Shape s = v.shape;
  s[0] = batch;
  return Var(Tensor::zeros(s, device));
}
}  // namespace

Var run(const ir::Graph& graph, const ir::ParameterStore& params, const Plan& plan,
        const Var& images, const RunOptions& options) {
  return run_outputs(graph, params, plan, images, options).logits;
}

RunOutputs run_outputs(const ir::Graph& graph, const ir::ParameterStore& params, const Plan& plan,
                       const Var& images, const RunOptions& options) {
  CG_ASSERT(plan.absent.size() == graph.values.size(), "plan made for another graph");
  CG_ASSERT(options.coefficients.size() == graph.arch_groups.size(), options.coefficients.size(),
            " coefficient matrices for ", graph.arch_groups.size(), " groups");
  const Shape& expect = graph.value(graph.input).shape;
  bool fits = images.shape().rank() == expect.rank();
  std::string wanted = "[N";
  for (int d = 1; d < expect.rank(); ++d) {
    fits = fits && images.shape()[d] == expect[d];
    wanted += ", " + std::to_string(expect[d]);
  }
  if (!fits)
    throw error("input batch ", images.shape().str(), " does not match the network input ", wanted,
                "]");
  const int64_t batch = images.shape()[0];
  Var state_in;
  if (graph.state_in.valid()) {
    Shape s = graph.value(graph.state_in).shape;
    s[0] = batch;
    if (options.state.defined() && !(options.state.shape() == s))
      throw error("the carried hidden state ", options.state.shape().str(),
                  " does not match the network's ", s.str(),
                  " (batch and hidden size of this batch)");
    state_in = options.state.defined() ? options.state : Var(Tensor::zeros(s, images.device()));
  }

  std::vector<Var> values(graph.values.size());
  for (size_t v = 0; v < plan.given.size(); ++v)
    if (plan.given[v]) {
      CG_ASSERT(options.given != nullptr && (*options.given)[v].defined(),
                "a value the plan reads from an earlier run was not kept");
      values[v] = std::move((*options.given)[v]);
    }
  const std::vector<EarlyDot> early = early_dots(graph, plan, options);
  auto dotted = [&](ValueId id) { return !early.empty() && early[id.index()].group >= 0; };
  auto read = [&](ValueId id) -> Var {
    const ir::Value& v = graph.value(id);
    switch (v.kind) {
      case ValueKind::input:
        return images;
      case ValueKind::parameter:
      case ValueKind::buffer:
        return params[v.param];
      case ValueKind::coefficient:
        return options.coefficients[v.arch.index()];
      case ValueKind::state:
        return state_in;
      case ValueKind::activation:
        break;
    }
    if (plan.absent[id.index()]) return zeros_like_value(v, batch, images.device());
    CG_ASSERT(values[id.index()].defined(), "value read before it was computed");
    return values[id.index()];
  };

  for (size_t pos = 0; pos < plan.order.size(); ++pos) {
    const Node& n = graph.node(plan.order[pos]);
    std::vector<Var> inputs;
    Attrs attrs = runtime_attrs(n, options,
                                plan.seed_position.empty() ? pos : size_t(plan.seed_position[pos]));
    if (n.drops_absent_inputs) {
      auto* ws = std::get_if<WeightedSumAttrs>(&attrs);
      std::vector<int32_t> columns, rows;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        if (!input_summed(plan, n, k) || dotted(n.inputs[k])) continue;
        inputs.push_back(read(n.inputs[k]));
        if (!ws || k >= n.input_candidates.size()) continue;
        columns.push_back(ws->columns[k]);
        if (!ws->rows.empty()) rows.push_back(ws->rows[k]);
      }
      if (ws) {
        ws->columns = std::move(columns);
        ws->rows = std::move(rows);
      }
    } else {
      for (ValueId in : n.inputs) inputs.push_back(in.valid() ? read(in) : Var());
    }
    const bool forward_only =
        n.candidate.valid() && plan.active[n.candidate.index()] == kForwardOnly;
    const size_t out = n.outputs.empty() ? 0 : n.outputs[0].index();
    // A weighted sum whose output an earlier run computed runs for its hook alone.
    const bool output_given = !plan.given.empty() && !n.outputs.empty() && plan.given[out];
    std::vector<Var> outs;
    const KernelPartScope part(n.candidate.valid()   ? KernelPart::candidate
                               : n.absent_with_input ? KernelPart::shared
                                                     : KernelPart::network);
    const bool is_sum = std::holds_alternative<WeightedSumAttrs>(attrs);
    const bool terms_left = !is_sum || inputs.size() > 1;  // beside the coefficients
    // A coefficient's gradient <dy, x> from an output dotted as soon as it exists.
    const auto add_dot = [&](const EarlyDot& e, double dot) {
      Var c = options.coefficients[size_t(e.group)];
      if (!c.has_grad()) c.set_grad(Tensor::zeros(c.shape(), c.device()));
      c.grad().data()[e.entry] += static_cast<float>(dot);
    };
    // A dotted batch norm (a forward-only candidate's last node): its statistics and the
    // dot, without the normalised output (vec::batch_norm_dot). In a DARTS-space NASP step
    // that was one write and one read of ~420 outputs of up to 4 MiB.
    const auto* norm = std::get_if<BatchNormAttrs>(&attrs);
    const bool norm_dotted = forward_only && norm != nullptr && norm->training &&
                             n.outputs.size() == 1 && !early.empty() && dotted(n.outputs[0]) &&
                             inputs[0].device() == Device::cpu;
    if (output_given) {
      CG_ASSERT(is_sum, "a node of a cut plan with its output given");
    } else if (!terms_left) {  // every term gave its gradient early; coefficients 0
      outs = {zeros_like_value(graph.value(n.outputs[0]), batch, images.device())};
    } else if (passes_through(attrs, inputs)) {
      outs = {inputs[0]};
    } else if (sums_with_ones(attrs, inputs)) {
      // The node sum of NASP's weight step (one selected op per edge): what add_n computes,
      // the edges' sum before node sums were fused, without reading the coefficients.
      inputs.pop_back();
      outs = ops::apply(OpKind::add_n, NoAttrs{}, inputs);
    } else if (norm_dotted) {
      const auto value = [](const Var& v) { return v.defined() ? v.value() : Tensor(); };
      add_dot(early[out], vec::batch_norm_dot(inputs[0].value(), value(inputs[1]), value(inputs[2]),
                                              inputs[3].value(), inputs[4].value(), norm->momentum,
                                              norm->eps, *early[out].grad));
      outs = {Var()};
    } else if (forward_only) {
      NoGradGuard no_grad;
      outs = ops::apply(n.op, attrs, inputs);
    } else {
      outs = ops::apply(n.op, attrs, inputs);
    }
    for (size_t o = 0; o < outs.size() && !early.empty() && !norm_dotted; ++o) {
      const EarlyDot& e = early[n.outputs[o].index()];
      if (e.group < 0) continue;
      add_dot(e, vec::dot(*e.grad, outs[o].value()));
      outs[o] = Var();
    }
    if (options.keep != nullptr)
      for (size_t o = 0; o < outs.size(); ++o)
        if ((*options.keep_mask)[n.outputs[o].index()] && outs[o].defined())  // not dotted
          (*options.keep)[n.outputs[o].index()] = outs[o].detach();
    const WeightedSumHooks& hooks = options.weighted_sums;
    if (is_sum && terms_left && hooks.grads != nullptr && (*hooks.grads)[out].defined()) {
      const EnableGradGuard record;
      ops::apply(n.op, attrs, inputs)[0].backward((*hooks.grads)[out]);
    }
    if (hooks.taps != nullptr &&
        (is_sum || (hooks.also_tap != nullptr && !n.outputs.empty() && (*hooks.also_tap)[out]))) {
      Var tap(Tensor::zeros(outs[0].shape(), outs[0].device()), true);
      outs[0] = ops::add(outs[0], tap);
      (*hooks.taps)[out] = std::move(tap);
    }
    if (!output_given)
      for (size_t o = 0; o < outs.size(); ++o) values[n.outputs[o].index()] = std::move(outs[o]);
    // Release what no later node reads; autodiff keeps what backward needs.
    for (ValueId in : n.inputs)
      if (in.valid() && plan.last_use[in.index()] == int32_t(pos) && in != graph.logits &&
          in != graph.aux_logits && in != graph.state_out)
        values[in.index()] = Var();
  }
  RunOutputs out{.logits = values[graph.logits.index()]};
  if (graph.aux_logits.valid() && !plan.absent[graph.aux_logits.index()])
    out.aux_logits = values[graph.aux_logits.index()];
  if (graph.state_out.valid())
    out.state = plan.absent[graph.state_out.index()]
                    ? zeros_like_value(graph.value(graph.state_out), batch, images.device())
                    : values[graph.state_out.index()];
  return out;
}

}  // namespace cellgraph::sched
