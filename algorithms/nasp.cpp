// NASP's architecture step (docs/algorithms.md):
//   A_bar = prox_C1(A)                       one-hot rows at the arg-max (the authors' code:
//                                            only on the edges each node keeps)
//   A     = prox_C2(A - lr * dF/dA_bar)      F = L_val(w, A_bar) + eta * R(A_bar)
//   A_bar = prox_C1(A)                       the ops the weight step then trains
// dL_val/dA_bar[e, k] = <dL/dx_j, o_k(x_i)> needs every candidate's output, so every
// candidate runs forward; the unselected ones run forward-only (no autodiff, no saved
// activations) and backward flows through the selected ops alone, forming no weight
// gradients. By default (--nasp-arch-passes two) the gradient is formed in two passes that
// never keep all those outputs at once (two_pass_gradient.h). The update is a plain
// projected gradient step with the architecture learning rate, as the paper writes it, or
// (nasp_adam) an Adam step as in the authors' code.
#include "algorithms/nasp.h"

#include <algorithm>
#include <map>
#include <memory>

#include "algorithms/algorithm.h"
#include "algorithms/two_pass_gradient.h"
#include "engine/backends/vector_ops.h"
#include "engine/error.h"
#include "ops/ops.h"

namespace cellgraph::algorithms {

std::vector<Tensor> one_hot_rows(const ArchState& state) {
  std::vector<Tensor> out;
  for (const Var& a : state.logits) {
    const int64_t rows = a.shape()[0], cols = a.shape()[1];
    const std::vector<float> v = a.value().to_vector();
    std::vector<float> hot(v.size(), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t best = 0;
      for (int64_t c = 1; c < cols; ++c)
        if (v[size_t(r * cols + c)] > v[size_t(r * cols + best)]) best = c;
      hot[size_t(r * cols + best)] = 1.0f;
    }
    out.push_back(Tensor::from_vector({rows, cols}, hot, a.device()));
  }
  return out;
}

namespace {
// The mixed edges of one node: their rows in one group, in edge order, and how many the
// node keeps (0: every edge, NATS-style).
struct NodeRows {
  int32_t group = 0;
  std::vector<int32_t> rows;
  int keep = 0;
};

// NASP's state beyond A: the node structure its projection needs, and the projection.
struct NaspState final : AlgorithmState {
  std::vector<NodeRows> nodes;
  std::vector<int64_t> none_column;  // per group: the column of `none`, -1 without one
  bool node_level = true;
  std::unique_ptr<AlgorithmState> clone() const override {
    return std::make_unique<NaspState>(*this);
  }
};

// Every searchable node of the first instance of each cell type (instances share rows).
// Throws Error for path weights (AGD), which the one-hot projection cannot express.
std::vector<NodeRows> node_rows(const ir::Graph& graph, const spec::Space& space) {
  for (const spec::Cell& cell : space.cells)
    for (const spec::Node& node : cell.nodes)
      if (node.path_weights)
        throw error(space.file, ":", node.pointer,
                    ": NASP projects every edge onto one op; path weights (normalised over the "
                    "node's edges, the AGD cell) have no such projection");
  std::vector<NodeRows> out;
  for (const spec::Cell& cell : space.cells) {
    int32_t first = -1;
    for (const ir::MixedEdge& m : graph.mixed_edges)
      if (m.cell == cell.name && (first < 0 || m.instance < first)) first = m.instance;
    if (first < 0) continue;
    for (const spec::Node& node : cell.nodes) {
      std::vector<const ir::MixedEdge*> edges;
      for (const ir::MixedEdge& m : graph.mixed_edges)
        if (m.cell == cell.name && m.instance == first && m.node == node.name) edges.push_back(&m);
      if (edges.empty()) continue;
      std::sort(edges.begin(), edges.end(),
                [](const ir::MixedEdge* a, const ir::MixedEdge* b) { return a->edge < b->edge; });
      // Fixed edges of the node always run and rank first in derivation (weight 1).
      const int fixed = int(node.edges.size() - edges.size());
      // A node whose edges use several op sets (groups) ranks its edges per group.
      std::map<int32_t, NodeRows> by_group;
      for (const ir::MixedEdge* e : edges) {
        NodeRows& n = by_group[e->arch.value];
        n.group = e->arch.value;
        n.rows.push_back(e->row);
        n.keep = node.keep > 0 ? std::max(node.keep - fixed, 0) : 0;
      }
      for (auto& [group, n] : by_group) out.push_back(std::move(n));
    }
  }
  return out;
}
}  // namespace

std::vector<Tensor> projected_rows(const ArchState& state) {
  const auto* nasp = dynamic_cast<const NaspState*>(state.extra.get());
  std::vector<Tensor> hot = one_hot_rows(state);
  if (nasp == nullptr || !nasp->node_level) return hot;
  // The projection runs on host copies (a few small matrices), then returns to A's device.
  std::vector<std::vector<float>> host_hot, host_a;
  for (size_t g = 0; g < hot.size(); ++g) {
    host_hot.push_back(hot[g].to_vector());
    host_a.push_back(state.logits[g].value().to_vector());
  }
  for (const NodeRows& node : nasp->nodes) {
    if (node.keep <= 0) continue;  // every edge stays with its arg-max op
    const int64_t cols = hot[size_t(node.group)].dim(1);
    const float* v = host_a[size_t(node.group)].data();
    float* h = host_hot[size_t(node.group)].data();
    // Each edge's best op other than none, and its A there.
    std::vector<std::pair<float, int64_t>> best;  // (strength, column) per edge
    for (int32_t r : node.rows) {
      int64_t col = -1;
      for (int64_t c = 0; c < cols; ++c) {
        if (c == nasp->none_column[size_t(node.group)]) continue;
        if (col < 0 || v[r * cols + c] > v[r * cols + col]) col = c;
      }
      best.emplace_back(col < 0 ? -1.0f : v[r * cols + col], col);
    }
    std::vector<size_t> order(node.rows.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t x, size_t y) { return best[x].first > best[y].first; });
    std::vector<bool> kept(node.rows.size(), false);
    for (size_t i = 0; i < order.size() && i < size_t(node.keep); ++i) kept[order[i]] = true;
    for (size_t e = 0; e < node.rows.size(); ++e) {
      float* row = h + int64_t(node.rows[e]) * cols;
      std::fill(row, row + cols, 0.0f);
      if (kept[e] && best[e].second >= 0) row[best[e].second] = 1.0f;
    }
  }
  for (size_t g = 0; g < hot.size(); ++g)
    hot[g] = Tensor::from_vector(hot[g].shape(), host_hot[g], hot[g].device());
  return hot;
}

void project_box(std::vector<Var>& a) {
  for (Var& v : a) vec::clamp(v.value(), 0.0f, 1.0f);
}

std::vector<std::vector<double>> parameter_shares(const ir::Graph& graph) {
  std::vector<std::vector<double>> counts;
  for (const ir::ArchGroup& g : graph.arch_groups) counts.emplace_back(g.columns.size(), 0.0);
  for (const ir::Parameter& p : graph.params) {
    if (p.is_buffer || !p.candidate.valid()) continue;
    const ir::Candidate& c = graph.candidate(p.candidate);
    counts[c.arch.index()][size_t(c.column)] += double(p.shape.numel());
  }
  for (std::vector<double>& group : counts) {
    double total = 0;
    for (double p : group) total += p;
    for (double& p : group) p = total > 0 ? p / total : 0.0;
  }
  return counts;
}

Tensor regulariser_gradient(const std::vector<double>& shares, const Tensor& a, float eta) {
  const int64_t rows = a.dim(0), cols = a.dim(1);
  CG_ASSERT(size_t(cols) == shares.size(), "shares for ", shares.size(), " columns, A has ", cols);
  // a times a matrix of per-column factors (host-made, tiny), on a's device.
  std::vector<float> factors(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      factors[size_t(r * cols + k)] = float(2.0 * eta * shares[size_t(k)]);
  return ops::mul(Var(a), Var(Tensor::from_vector(a.shape(), factors, a.device()))).value();
}

sched::ActiveSet selection_active_set(const ir::Graph& graph, const std::vector<Tensor>& hot,
                                      uint8_t others) {
  std::vector<std::vector<float>> host;  // the selection, read on the host
  host.reserve(hot.size());
  for (const Tensor& h : hot) host.push_back(h.to_vector());
  sched::ActiveSet active(graph.candidates.size(), others);
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    const ir::Candidate& c = graph.candidates[i];
    const int64_t cols = hot[c.arch.index()].dim(1);
    if (host[c.arch.index()][size_t(int64_t(c.row) * cols + c.column)] != 0.0f)
      active[i] = sched::kActive;
  }
  return active;
}

void update_architecture_proximal(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  const std::vector<Tensor> hot = projected_rows(arch);
  const sched::ActiveSet with_forward_only =
      selection_active_set(ctx.graph, hot, sched::kForwardOnly);
  std::vector<Var> coefficients;
  coefficients.reserve(hot.size());
  for (const Tensor& h : hot) coefficients.emplace_back(h, true);
  {
    FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture step: no dw
    const bool two_passes =
        ctx.hyper.choice("nasp-arch-passes") == "two" &&
        coefficient_gradient_two_pass(ctx, ctx.val, coefficients,
                                      selection_active_set(ctx.graph, hot, sched::kInactive),
                                      with_forward_only);
    if (!two_passes) {
      arch.active = with_forward_only;
      forward_loss(ctx, ctx.val, coefficients, false).backward();
    }
  }
  const float lr = ctx.arch_optimizer.lr();
  const float eta = float(ctx.hyper.number("nasp-eta"));
  const bool adam = ctx.hyper.choice("nasp-optimizer") == "adam";
  const std::vector<std::vector<double>> shares =
      eta != 0 ? parameter_shares(ctx.graph) : std::vector<std::vector<double>>();
  for (size_t g = 0; g < arch.logits.size(); ++g) {
    // dF/dA_bar = dL_val/dA_bar + eta * dR/dA_bar
    Tensor grad = coefficients[g].has_grad()
                      ? coefficients[g].grad().clone()
                      : Tensor::zeros(arch.logits[g].shape(), arch.logits[g].device());
    if (eta != 0) vec::axpy(1.0f, regulariser_gradient(shares[g], hot[g], eta), grad);
    if (adam) {
      arch.logits[g].set_grad(grad);
      continue;
    }
    vec::axpy(-lr, grad, arch.logits[g].value());  // A -= lr * grad
  }
  if (adam) ctx.arch_optimizer.step();
  project_box(arch.logits);
  arch.active = selection_active_set(ctx.graph, projected_rows(arch), sched::kInactive);
}

namespace {
// The relaxation: A in [0, 1] itself is the architecture (derivation ranks it); the network
// sees its one-hot rows.
class Nasp final : public Algorithm {
 public:
  Nasp()
      : Algorithm("nasp",
                  "NASP: A in [0,1] by a proximal gradient step at its one-hot projection; "
                  "weights train only the selected op of each edge") {}
  std::vector<Hyperparameter> hyperparameters() const override {
    Hyperparameter eta = number("nasp-eta", 0, 0, 1e30,
                                "weight eta of the parameter-count regulariser sum_k (p_k/p) "
                                "||A[:,k]||^2",
                                "NASP Eq. 8");
    eta.optional_in_config = true;
    // The paper writes a plain gradient step; its learning rate 3e-4 is an Adam rate, and
    // the authors' code steps A with Adam: that is the default.
    Hyperparameter optimizer =
        choice("nasp-optimizer", {"adam", "sgd"},
               "adam: the architecture Adam (the authors' code); sgd: A - arch-lr * grad (the "
               "paper's Eq. 10); then clip to [0, 1]",
               "the authors' code");
    optimizer.optional_in_config = true;
    Hyperparameter projection =
        choice("nasp-projection", {"node", "edge"},
               "node: one-hot only on the edges each node keeps (the authors' code; the "
               "searched network is the cell derived); edge: one op on every edge",
               "the authors' code");
    projection.optional_in_config = true;
    projection.absent_value = "edge";  // what runs before this option projected
    Hyperparameter passes =
        choice("nasp-arch-passes", {"two", "one"},
               "how the architecture gradient is formed (the same gradient up to float "
               "rounding): two: the selected network's forward and backward, then the other "
               "candidates forward-only on the values it kept, each output dropped once its "
               "coefficient's gradient is formed (far less memory, same time); one: one "
               "forward keeps every candidate's output until the backward (the authors' code)",
               "cellgraph (memory)");
    passes.optional_in_config = true;
    passes.absent_value = "one";  // what runs before this option existed
    return {eta, optimizer, projection, passes};
  }
  std::vector<NamedPass> passes() const override {
    return {{"update_architecture_proximal", update_architecture_proximal},
            {"update_weights", update_weights}};
  }
  ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                          const HyperValues& hyper, uint64_t seed) const override {
    auto nasp = std::make_unique<NaspState>();
    nasp->nodes = node_rows(graph, space);
    nasp->node_level = hyper.choice("nasp-projection") == "node";
    for (const ir::ArchGroup& g : graph.arch_groups) {
      const auto none = std::find(g.columns.begin(), g.columns.end(), "none");
      nasp->none_column.push_back(none == g.columns.end() ? -1 : none - g.columns.begin());
    }
    ArchState state = Algorithm::initial_state(graph, space, hyper, seed);
    project_box(state.logits);  // A_0 = prox_C2(alpha_0)
    state.extra = ExtraState(std::move(nasp));
    state.active = selection_active_set(graph, projected_rows(state), sched::kInactive);
    return state;
  }
  std::vector<Var> coefficients(const ArchState& arch) const override {
    std::vector<Var> out;
    for (const Tensor& t : projected_rows(arch)) out.emplace_back(t);
    return out;
  }
  std::vector<std::vector<float>> ranking_values(const ArchState& arch) const override {
    std::vector<std::vector<float>> out;
    for (const Var& a : arch.logits) out.push_back(a.value().to_vector());
    return out;
  }
};
}  // namespace

const Algorithm& nasp_algorithm() {
  static const Nasp kNasp;
  return kNasp;
}

}  // namespace cellgraph::algorithms
