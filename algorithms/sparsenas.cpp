// SparseNAS' step (docs/algorithms.md), on a real matrix A per cell type with no softmax:
//   g = dL_val/dA                      DARTS' second-order gradient at A (or first order)
//   z = A - eta g                      (AdamHAPG: per-entry Adam steps eta_i)
//   x = prox_group(prox_l1(z))         Omega = lambda alpha ||A||_1
//                                            + lambda (1 - alpha) sum_n sqrt|G_n| ||A_Gn||_2
//   v = x - A + u_{k-1} v,  A = x + u_k v,  u_k = (k - 1) / (k + 2)
//   SGD on L_train over A's non-zero entries
// Sparse execution: an entry of A that is exactly zero is inactive in the weight step (its op
// neither runs nor trains), and in the architecture passes it runs forward-only, the way
// NASP's unselected ops do: its gradient <dL/dx_j, o_k(x_i)> needs its output, nothing
// more, and the proximal step needs that gradient to revive it. --sparsenas-revive-every N
// skips even that on all but every N-th step (docs/algorithms.md has the measurements).
#include "algorithms/sparsenas.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

#include "algorithms/algorithm.h"
#include "algorithms/darts.h"
#include "algorithms/run_loop.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/optim/adam.h"
#include "engine/optim/schedule.h"

namespace cellgraph::algorithms {

void prox_l1(std::vector<double>& z, const std::vector<double>& thresholds) {
  CG_ASSERT(z.size() == thresholds.size(), z.size(), " entries, ", thresholds.size(),
            " thresholds");
  for (size_t i = 0; i < z.size(); ++i) {
    const double shrunk = std::abs(z[i]) - thresholds[i];
    z[i] = shrunk > 0 ? std::copysign(shrunk, z[i]) : 0.0;
  }
}

void prox_group(std::vector<double>& z, double threshold) {
  double norm2 = 0;
  for (double v : z) norm2 += v * v;
  const double norm = std::sqrt(norm2);
  if (!(norm > threshold)) {
    std::fill(z.begin(), z.end(), 0.0);
    return;
  }
  const double scale = 1.0 - threshold / norm;
  for (double& v : z) v *= scale;
}

void sparse_group_prox(std::vector<double>& z, const std::vector<double>& l1_thresholds,
                       const std::vector<std::vector<int64_t>>& groups,
                       const std::vector<double>& group_thresholds) {
  CG_ASSERT(groups.size() == group_thresholds.size(), groups.size(), " groups, ",
            group_thresholds.size(), " thresholds");
  prox_l1(z, l1_thresholds);
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<double> part;
    part.reserve(groups[g].size());
    for (int64_t i : groups[g]) part.push_back(z[size_t(i)]);
    prox_group(part, group_thresholds[g]);
    for (size_t j = 0; j < part.size(); ++j) z[size_t(groups[g][j])] = part[j];
  }
}

double median_of(std::vector<double> v) {
  CG_ASSERT(!v.empty(), "median of nothing");
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double hapg_momentum(int64_t k) { return k <= 1 ? 0.0 : double(k - 1) / double(k + 2); }

void hapg_iteration(HapgVectors& it, const std::vector<double>& grad,
                    const std::vector<std::vector<int64_t>>& groups, const HapgSettings& s,
                    const std::vector<uint8_t>& known) {
  const size_t n = it.a.size();
  CG_ASSERT(grad.size() == n && it.x.size() == n && it.v.size() == n, "HAPG vectors of ",
            it.a.size(), ", ", it.x.size(), ", ", it.v.size(), " entries and ", grad.size(),
            " gradients");
  CG_ASSERT(known.empty() || known.size() == n, "known mask of ", known.size(), " for ", n);
  if (s.adam && it.m.empty()) {
    it.m.assign(n, 0.0);
    it.s.assign(n, 0.0);
  }
  const int64_t k = it.k + 1;
  std::vector<double> z(n), step(n, s.lr);
  const double bias1 = 1.0 - std::pow(s.beta1, double(k));
  const double bias2 = 1.0 - std::pow(s.beta2, double(k));
  for (size_t i = 0; i < n; ++i) {
    const bool has_grad = known.empty() || known[i] != 0;
    if (!s.adam) {
      z[i] = has_grad ? it.a[i] - s.lr * grad[i] : it.a[i];
      continue;
    }
    if (has_grad) {
      it.m[i] = s.beta1 * it.m[i] + (1.0 - s.beta1) * grad[i];
      it.s[i] = s.beta2 * it.s[i] + (1.0 - s.beta2) * grad[i] * grad[i];
    }
    step[i] = s.lr / (std::sqrt(it.s[i] / bias2) + s.eps);
    z[i] = has_grad ? it.a[i] - step[i] * (it.m[i] / bias1) : it.a[i];
  }
  std::vector<double> l1(n), group_thresholds;
  for (size_t i = 0; i < n; ++i) l1[i] = step[i] * s.lambda * s.alpha;
  for (const std::vector<int64_t>& g : groups) {
    double eta = s.lr;
    if (s.adam) {
      std::vector<double> steps;
      steps.reserve(g.size());
      for (int64_t i : g) steps.push_back(step[size_t(i)]);
      eta = median_of(steps);
    }
    group_thresholds.push_back(std::sqrt(double(g.size())) * eta * s.lambda * (1.0 - s.alpha));
  }
  sparse_group_prox(z, l1, groups, group_thresholds);
  const double u_previous = hapg_momentum(k - 1), u = hapg_momentum(k);
  for (size_t i = 0; i < n; ++i) {
    it.v[i] = z[i] - it.a[i] + u_previous * it.v[i];
    it.a[i] = z[i] + u * it.v[i];
    it.x[i] = z[i];
  }
  it.k = k;
}

SparseNasState& sparsenas_state(ArchState& arch) {
  auto* state = dynamic_cast<SparseNasState*>(arch.extra.get());
  CG_ASSERT(state != nullptr, "the architecture state has no SparseNAS state");
  return *state;
}

const SparseNasState& sparsenas_state(const ArchState& arch) {
  const auto* state = dynamic_cast<const SparseNasState*>(arch.extra.get());
  CG_ASSERT(state != nullptr, "the architecture state has no SparseNAS state");
  return *state;
}

sched::ActiveSet nonzero_active_set(const ir::Graph& graph, const ArchState& arch, uint8_t zero) {
  sched::ActiveSet active(graph.candidates.size(), zero);
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    const ir::Candidate& c = graph.candidates[i];
    const Tensor& a = arch.logits[c.arch.index()].value();
    if (a.data()[int64_t(c.row) * a.dim(1) + c.column] != 0.0f) active[i] = sched::kActive;
  }
  return active;
}

CandidateCounts candidates_run(const ir::Graph& graph, const sched::Plan& plan) {
  CandidateCounts counts;
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    if (plan.active[i] == sched::kInactive || plan.absent[graph.candidates[i].output.index()])
      continue;
    (plan.active[i] == sched::kForwardOnly ? counts.forward_only : counts.recorded) += 1;
  }
  return counts;
}

namespace {

// Whether this step's architecture passes compute the gradient of A's zero entries.
bool revives(const HyperValues& hyper, int64_t iterations_done) {
  return iterations_done % hyper.integer("sparsenas-revive-every") == 0;
}

std::vector<std::vector<int64_t>> group_entries(const SparseNasState& state) {
  std::vector<std::vector<int64_t>> out;
  out.reserve(state.groups.size());
  for (const SparseGroup& g : state.groups) out.push_back(g.entries);
  return out;
}

}  // namespace

void sparsenas_architecture_gradient(StepContext& ctx) {
  SparseNasState& state = sparsenas_state(ctx.arch);
  const bool revive = revives(ctx.hyper, state.iterations);
  ctx.arch.active =
      nonzero_active_set(ctx.graph, ctx.arch, revive ? sched::kForwardOnly : sched::kInactive);
  const CandidateCounts counts = candidates_run(ctx.graph, ctx.plan());
  state.arch_backward += counts.recorded;
  state.arch_forward_only += counts.forward_only;
  if (ctx.hyper.choice("sparsenas-order") == "second") {
    second_order_gradient(ctx);
    return;
  }
  FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture pass: no dw
  for (Var& a : ctx.arch.logits) a.zero_grad();
  forward_loss(ctx, ctx.val, relaxed_coefficients(ctx.arch), false).backward();
}

void sparsenas_proximal_step(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  SparseNasState& state = sparsenas_state(arch);
  const HyperValues& h = ctx.hyper;
  const bool revive = revives(h, state.iterations);

  HapgVectors it;
  it.k = state.iterations;
  std::vector<double> grad;
  std::vector<uint8_t> known;
  for (size_t g = 0; g < arch.logits.size(); ++g) {
    const std::vector<float> a = arch.logits[g].value().to_vector();
    const std::vector<float> d = arch.logits[g].has_grad() ? arch.logits[g].grad().to_vector()
                                                           : std::vector<float>(a.size(), 0.0f);
    for (size_t i = 0; i < a.size(); ++i) {
      it.a.push_back(a[i]);
      it.x.push_back(state.x[g][i]);
      it.v.push_back(state.v[g][i]);
      it.m.push_back(state.m[g][i]);
      it.s.push_back(state.s[g][i]);
      grad.push_back(d[i]);
      known.push_back(revive || a[i] != 0.0f);
    }
  }

  HapgSettings settings;
  settings.lambda =
      h.number("sparsenas-lambda") + h.number("sparsenas-lambda-step") * double(ctx.epoch);
  settings.alpha = h.number("sparsenas-alpha");
  settings.adam = h.choice("sparsenas-optimizer") == "adam-hapg";
  if (settings.adam) {
    // The architecture optimizer's step and betas (DARTS': 3e-4, 0.5, 0.999); Omega is the
    // only regulariser of A, so its weight decay is not applied.
    const auto* adam = dynamic_cast<const Adam*>(&ctx.arch_optimizer);
    CG_ASSERT(adam != nullptr, "AdamHAPG reads the settings of an Adam architecture optimizer");
    settings.lr = adam->lr();
    settings.beta1 = adam->options().beta1;
    settings.beta2 = adam->options().beta2;
    settings.eps = adam->options().eps;
  } else {
    const CosineSchedule schedule(float(h.number("sparsenas-lr")),
                                  float(h.number("sparsenas-lr-min")),
                                  std::max<int64_t>(ctx.epochs, 1));
    settings.lr = schedule.lr_at(ctx.epoch);
  }
  hapg_iteration(it, grad, group_entries(state), settings, known);

  for (size_t g = 0, flat = 0; g < arch.logits.size(); ++g) {
    float* a = arch.logits[g].value().data();
    for (size_t i = 0; i < state.x[g].size(); ++i, ++flat) {
      a[i] = float(it.a[flat]);
      state.x[g][i] = float(it.x[flat]);
      state.v[g][i] = float(it.v[flat]);
      state.m[g][i] = float(it.m[flat]);
      state.s[g][i] = float(it.s[flat]);
    }
    arch.logits[g].zero_grad();
  }
  state.iterations = it.k;
  state.lambda = settings.lambda;
  state.lr = settings.lr;
  arch.active = nonzero_active_set(ctx.graph, arch, sched::kInactive);
  state.weight_candidates += candidates_run(ctx.graph, ctx.plan()).recorded;
  state.steps += 1;
}

namespace {

// SparseNAS expresses a zero path by A = 0 and weighs every (edge, op) entry itself, and a
// zeroed node must compute zero downstream (the scheduler's zero propagation).
void check_space(const ir::Graph& graph, const spec::Space& space) {
  if (space.network.edge_bn)
    throw error(space.file, ":", space.network.pointer,
                "/edge_bn: SparseNAS zeroes whole nodes, and an op closed by an affine BN does "
                "not map a zero input to zero; remove \"edge_bn\"");
  for (const ir::ArchGroup& g : graph.arch_groups) {
    const spec::Cell* cell = space.find_cell(g.cell);
    CG_ASSERT(cell != nullptr, "no cell '", g.cell, "' for group '", g.name, "'");
    if (g.kind == ir::ArchGroup::Kind::edge_paths) {
      for (const spec::Node& n : cell->nodes)
        if (n.path_weights)
          throw error(space.file, ":", n.pointer,
                      ": SparseNAS weighs every (edge, op) entry itself; remove \"path_weights\"");
    }
    if (std::find(g.columns.begin(), g.columns.end(), "none") == g.columns.end()) continue;
    for (const spec::Node& n : cell->nodes)
      for (const spec::Edge& e : n.edges)
        if (e.ops.size() > 1 && std::find(e.ops.begin(), e.ops.end(), "none") != e.ops.end())
          throw error(
              space.file, ":", e.pointer,
              ": SparseNAS has no 'none' op (a zero path is an entry A = 0); remove "
              "'none' from ",
              e.op_set.empty() ? std::string("the edge's ops") : "op set '" + e.op_set + "'");
  }
}

// A row that starts one-hot (spec `init_one_hot`) starts exactly at e_k: A has no softmax
// that an exact one-hot would saturate, and the row's other entries start as zero paths
// (inactive) that the prox can revive like any other.
void start_one_hot_rows(const ir::Graph& graph, std::vector<Var>& a) {
  CG_ASSERT(a.size() == graph.arch_groups.size(), "one A per architecture group");
  for (size_t g = 0; g < a.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    const size_t cols = group.columns.size();
    float* p = a[g].value().data();
    for (size_t r = 0; r < size_t(group.rows); ++r) {
      const int32_t hot = group.one_hot[r];
      if (hot < 0) continue;
      for (size_t c = 0; c < cols; ++c) p[r * cols + c] = c == size_t(hot) ? 1.0f : 0.0f;
    }
  }
}

// Omega's groups: per node of a cell type, every (mixed edge, op) entry of its rows.
std::vector<SparseGroup> node_groups(const ir::Graph& graph, const spec::Space& space,
                                     const std::vector<int64_t>& offsets) {
  std::vector<SparseGroup> groups;
  std::map<std::tuple<std::string, int32_t, std::string>, size_t> index;
  std::set<int64_t> rows_seen;
  for (const ir::MixedEdge& m : graph.mixed_edges) {
    const int64_t cols = int64_t(graph.arch_group(m.arch).columns.size());
    const int64_t row_start = offsets[m.arch.index()] + int64_t(m.row) * cols;
    if (!rows_seen.insert(row_start).second) continue;  // another instance of a shared row
    const int32_t instance = space.arch.share_by_cell ? -1 : m.instance;
    const auto key = std::make_tuple(m.cell, instance, m.node);
    auto [found, added] = index.emplace(key, groups.size());
    if (added) {
      std::string label = m.cell + "/" + m.node;
      if (instance >= 0) label += "@" + std::to_string(instance);
      groups.push_back({label, {}});
    }
    for (int64_t c = 0; c < cols; ++c) groups[found->second].entries.push_back(row_start + c);
  }
  return groups;
}

// Mixed paths: the node keeps every (edge, op) with |x| > threshold as its own edge (two ops
// on one edge become parallel edges) and no edge from a node pruned before it (`cell` holds
// the earlier nodes already derived; a pruned one has no edge left).
void keep_mixed_paths(spec::Node& node, const spec::Cell& cell, const ir::Graph& graph,
                      const SparseNasState& state) {
  auto pruned = [&](const std::string& name) {
    for (const spec::Node& n : cell.nodes)
      if (n.name == name) return n.edges.empty();
    return false;  // a cell input
  };
  std::vector<spec::Edge> kept;
  for (size_t e = 0; e < node.edges.size(); ++e) {
    const spec::Edge& edge = node.edges[e];
    if (pruned(edge.from)) continue;
    if (edge.ops.size() == 1) {  // a fixed edge stays while its source does
      kept.push_back(edge);
      continue;
    }
    const ir::MixedEdge* m = find_mixed_edge(graph, cell.name, node.name, int32_t(e));
    CG_ASSERT(m != nullptr, "no architecture row for ", cell.name, "/", node.name, "/e", e);
    const size_t cols = graph.arch_group(m->arch).columns.size();
    const std::vector<float>& x = state.x[m->arch.index()];
    for (size_t k = 0; k < edge.ops.size(); ++k) {
      if (!(std::abs(double(x[size_t(m->row) * cols + k])) > state.threshold)) continue;
      spec::Edge one = edge;
      one.ops = {edge.ops[k]};
      one.op_set.clear();
      one.init.clear();
      kept.push_back(std::move(one));
    }
  }
  node.edges = std::move(kept);
  node.keep = 0;  // a fixed node keeps what it has
  node.path_weights = false;
}

// Removes the nodes left without an edge; the output concatenates the survivors.
void drop_pruned_nodes(spec::Space& derived, const spec::Space& search, double threshold) {
  for (spec::Cell& cell : derived.cells) {
    std::set<std::string> pruned;
    std::vector<spec::Node> nodes;
    for (spec::Node& n : cell.nodes) {
      if (n.edges.empty())
        pruned.insert(n.name);
      else
        nodes.push_back(std::move(n));
    }
    cell.nodes = std::move(nodes);
    if (pruned.empty()) continue;
    spec::CellOutput out = cell.output;
    out.concat.clear();
    out.pointers.clear();
    for (size_t i = 0; i < cell.output.concat.size(); ++i) {
      if (pruned.count(cell.output.concat[i])) continue;
      out.concat.push_back(cell.output.concat[i]);
      if (i < cell.output.pointers.size()) out.pointers.push_back(cell.output.pointers[i]);
    }
    if (out.concat.empty())
      throw error(search.file, ":", cell.pointer, ": SparseNAS pruned every node of cell '",
                  cell.name, "' that its output reads (no path with |x| > ", threshold,
                  " reaches it); nothing to derive");
    cell.output = std::move(out);
  }
}

class SparseNas final : public Algorithm {
 public:
  SparseNas()
      : Algorithm("sparsenas",
                  "SparseNAS: a real A under a sparse group lasso, HAPG on the DARTS gradient; "
                  "zero entries neither run nor train; mixed-path derivation") {}

  std::vector<Hyperparameter> hyperparameters() const override {
    return {choice("sparsenas-optimizer", {"hapg", "adam-hapg"},
                   "hapg: z = A - eta g, eta cosine from --sparsenas-lr to --sparsenas-lr-min; "
                   "adam-hapg: z by Adam with --arch-lr and --arch-beta1/2 (no weight decay), "
                   "per-entry thresholds",
                   "SparseNAS Eqs. 6-10, AdamHAPG"),
            choice("sparsenas-order", {"second", "first"},
                   "dL_val/dA: DARTS' second-order (unrolled) gradient, or first order", "DARTS"),
            number("sparsenas-lambda", 0.01, 0, 1e30,
                   "lambda of Omega at epoch 0; lambda_e = lambda + lambda_step * e",
                   "SparseNAS, pathwise"),
            number("sparsenas-lambda-step", 0.01, 0, 1e30, "lambda's increase per epoch",
                   "SparseNAS, pathwise"),
            number("sparsenas-alpha", 0.5, 0, 1,
                   "Omega's l1 share alpha (1 - alpha weighs the per-node groups)", "SparseNAS"),
            number("sparsenas-lr", 0.025, 0, 1e30, "HAPG's step eta at epoch 0 (cosine per epoch)",
                   "SparseNAS"),
            number("sparsenas-lr-min", 0.001, 0, 1e30, "HAPG's step eta at the last epoch",
                   "SparseNAS"),
            number("sparsenas-threshold", 0, 0, 1e30,
                   "derivation keeps the (edge, op) paths with |x| > this"),
            integer("sparsenas-revive-every", 1, 1, 1000000000,
                    "zero entries of A run forward-only for their gradient every N-th step (1: "
                    "every step); on the others they stay off and cannot revive")};
  }

  std::vector<NamedPass> passes() const override {
    return {{"sparsenas_architecture_gradient", sparsenas_architecture_gradient},
            {"sparsenas_proximal_step", sparsenas_proximal_step},
            {"update_weights", update_weights}};
  }

  // A_0 = init_std * N(0, 1) (DARTS' draw), one-hot rows exactly e_k; x_0 = A_0, v = 0, no
  // iteration done.
  ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                          const HyperValues& hyper, uint64_t seed) const override {
    check_space(graph, space);
    ArchState arch = Algorithm::initial_state(graph, space, hyper, seed);
    start_one_hot_rows(graph, arch.logits);
    auto state = std::make_unique<SparseNasState>();
    int64_t offset = 0;
    for (const Var& a : arch.logits) {
      state->offsets.push_back(offset);
      offset += a.value().numel();
      state->x.push_back(a.value().to_vector());
      state->v.emplace_back(size_t(a.value().numel()), 0.0f);
    }
    state->m = state->v;
    state->s = state->v;
    state->groups = node_groups(graph, space, state->offsets);
    state->threshold = hyper.number("sparsenas-threshold");
    arch.extra = ExtraState(std::move(state));
    arch.active = nonzero_active_set(graph, arch, sched::kInactive);
    return arch;
  }

  // The network runs on A itself; its gradient is A's.
  std::vector<Var> coefficients(const ArchState& arch) const override {
    std::vector<Var> out;
    for (const Var& a : arch.logits) out.emplace_back(a.value().clone());
    return out;
  }
  std::vector<Var> relaxed_coefficients(const ArchState& arch) const override {
    return arch.logits;
  }
  // What records and derivation read: the last prox output x.
  std::vector<std::vector<float>> ranking_values(const ArchState& arch) const override {
    return sparsenas_state(arch).x;
  }

  Derived derive(const spec::Space& space, const ir::Graph& graph,
                 const ArchState& arch) const override {
    const SparseNasState& state = sparsenas_state(arch);
    for (size_t g = 0; g < state.x.size(); ++g)
      for (float v : state.x[g])
        if (!std::isfinite(v))
          throw error("architecture weights '", graph.arch_groups[g].name,
                      "' hold inf or NaN (the search diverged); refusing to derive from them");
    Derived d = derive_per_node(space, [&](spec::Node& node, const spec::Cell& cell) {
      keep_mixed_paths(node, cell, graph, state);
    });
    drop_pruned_nodes(d.space, space, state.threshold);
    d.genotype = genotype_string(d.space);
    return d;
  }

  void save(const ir::Graph& graph, const ArchState& arch, io::Checkpoint& ckpt) const override {
    const SparseNasState& state = sparsenas_state(arch);
    for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
      const std::string& name = graph.arch_groups[g].name;
      const Shape& shape = arch.logits[g].shape();
      ckpt.add("sparsenas/x/" + name, Tensor::from_vector(shape, state.x[g]));
      ckpt.add("sparsenas/v/" + name, Tensor::from_vector(shape, state.v[g]));
      ckpt.add("sparsenas/adam_m/" + name, Tensor::from_vector(shape, state.m[g]));
      ckpt.add("sparsenas/adam_v/" + name, Tensor::from_vector(shape, state.s[g]));
    }
    ckpt.set_meta("sparsenas/iterations", std::to_string(state.iterations));
    ckpt.set_meta("sparsenas/threshold", io::format_double(state.threshold));
    ckpt.set_meta("sparsenas/lambda", io::format_double(state.lambda));
    ckpt.set_meta("sparsenas/lr", io::format_double(state.lr));
    ckpt.set_meta("sparsenas/steps", std::to_string(state.steps));
    ckpt.set_meta("sparsenas/weight_candidates", std::to_string(state.weight_candidates));
    ckpt.set_meta("sparsenas/arch_backward", std::to_string(state.arch_backward));
    ckpt.set_meta("sparsenas/arch_forward_only", std::to_string(state.arch_forward_only));
  }

  // x and the derivation threshold for derivation; everything for a resumed step.
  void restore(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
               bool full) const override {
    SparseNasState& state = sparsenas_state(arch);
    auto read = [&](const std::string& what, size_t g) {
      const std::string& name = graph.arch_groups[g].name;
      return ckpt.tensor("sparsenas/" + what + "/" + name, arch.logits[g].shape()).to_vector();
    };
    for (size_t g = 0; g < graph.arch_groups.size(); ++g) state.x[g] = read("x", g);
    state.threshold = ckpt.meta_double("sparsenas/threshold");
    if (!full) return;
    for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
      state.v[g] = read("v", g);
      state.m[g] = read("adam_m", g);
      state.s[g] = read("adam_v", g);
    }
    state.iterations = ckpt.meta_int("sparsenas/iterations");
    state.lambda = ckpt.meta_double("sparsenas/lambda");
    state.lr = ckpt.meta_double("sparsenas/lr");
    state.steps = ckpt.meta_int("sparsenas/steps");
    state.weight_candidates = ckpt.meta_int("sparsenas/weight_candidates");
    state.arch_backward = ckpt.meta_int("sparsenas/arch_backward");
    state.arch_forward_only = ckpt.meta_int("sparsenas/arch_forward_only");
  }

  // lambda and eta of the last step, per node the non-zero entries of x (0: the node is
  // pruned) and the candidates run per step over the epoch.
  void describe_epoch(const ir::Graph& graph, const ArchState& arch,
                      spec::JsonValue& record) const override {
    const SparseNasState& state = sparsenas_state(arch);
    spec::JsonValue out = spec::JsonValue::object();
    out.set("lambda", state.lambda);
    out.set("eta", decimal_of(float(state.lr)));
    out.set("iterations", state.iterations);
    int64_t nonzero = 0, entries = 0;
    spec::JsonValue nodes = spec::JsonValue::object();
    for (const SparseGroup& g : state.groups) {
      int64_t n = 0;
      for (int64_t i : g.entries) {
        const auto group = size_t(std::upper_bound(state.offsets.begin(), state.offsets.end(), i) -
                                  state.offsets.begin() - 1);
        n += state.x[group][size_t(i - state.offsets[group])] != 0.0f;
      }
      nodes.set(g.label, n);
      nonzero += n;
      entries += int64_t(g.entries.size());
    }
    out.set("nonzero_paths", nodes);
    out.set("nonzero", nonzero);
    out.set("entries", entries);
    const double steps = double(std::max<int64_t>(state.steps, 1));
    spec::JsonValue candidates = spec::JsonValue::object();
    candidates.set("total", int64_t(graph.candidates.size()));
    candidates.set("weight_step", double(state.weight_candidates) / steps);
    candidates.set("arch_recorded", double(state.arch_backward) / steps);
    candidates.set("arch_forward_only", double(state.arch_forward_only) / steps);
    out.set("candidates_per_step", candidates);
    record.set("sparsenas", out);
  }

  void end_epoch(const ir::Graph& /*graph*/, ArchState& arch, const HyperValues& /*hyper*/,
                 int64_t /*epoch*/) const override {
    SparseNasState& state = sparsenas_state(arch);
    state.steps = state.weight_candidates = state.arch_backward = state.arch_forward_only = 0;
  }
};

}  // namespace

const Algorithm& sparsenas_algorithm() {
  static const SparseNas kSparseNas;
  return kSparseNas;
}

}  // namespace cellgraph::algorithms
