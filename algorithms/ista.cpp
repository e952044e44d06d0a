// ISTA-NAS, two-stage (docs/algorithms.md). Per intermediate node j with
// n_j = (incoming edges) x (candidate ops, none excluded) dictionary entries:
//   z_j = argmin_z 1/2 ||A_j z - b_j||^2 + lambda ||z||_1     (ISTA / FISTA, warm start)
//   S   = the s largest |z_j| (s = the node's keep)
//   x_j = sum_{i in S} c_i o_i,  c_S = A_S^T b_j - E_SS z_S,  E = A_j^T A_j - I
// so only the s supported ops run. When b_j = A_j z with z supported on S and the LASSO
// fit is exact, c_S = A_S^T A_S z_S - (A_S^T A_S - I) z_S = z_S: the node computes its
// sparse code's combination, and dL/db_j = A_S dL/dc_S reaches b through A_S.
#include "algorithms/ista.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "engine/error.h"
#include "engine/optim/clip.h"
#include "engine/tensor/random.h"

namespace cellgraph::algorithms {

namespace {
// The mixed edges of one node of a cell type's first instance, in edge order.
std::vector<const ir::MixedEdge*> node_edges(const ir::Graph& graph, const std::string& cell,
                                             int32_t instance, const std::string& node) {
  std::vector<const ir::MixedEdge*> out;
  for (const ir::MixedEdge& m : graph.mixed_edges)
    if (m.cell == cell && m.instance == instance && m.node == node) out.push_back(&m);
  std::sort(out.begin(), out.end(),
            [](const ir::MixedEdge* a, const ir::MixedEdge* b) { return a->edge < b->edge; });
  return out;
}

std::vector<int32_t> top_support(const std::vector<double>& z, int keep) {
  std::vector<int32_t> order(z.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return std::abs(z[size_t(a)]) > std::abs(z[size_t(b)]);
  });
  order.resize(size_t(keep));
  std::sort(order.begin(), order.end());
  return order;
}
}  // namespace

std::vector<double> node_code(const ArchState& state, const SparseNode& node) {
  const float* b = state.codes[size_t(node.group)].value().data() + node.offset;
  return std::vector<double>(b, b + node.m);
}

bool recover_node(SparseNode& node, const std::vector<double>& b, const LassoOptions& options) {
  const LassoResult r = solve_lasso(node.a, node.m, node.n(), b, options, node.z);
  double change = 0;
  for (size_t i = 0; i < r.z.size(); ++i) change += (r.z[i] - node.z[i]) * (r.z[i] - node.z[i]);
  node.z_change = std::sqrt(change);
  node.z = r.z;
  std::vector<int32_t> support = top_support(node.z, node.keep);
  const bool changed = support != node.support;
  node.support = std::move(support);
  node.support_changes += changed;
  return changed;
}

sched::ActiveSet support_active_set(const ir::Graph& graph, const ArchState& state) {
  // Per group, per (row, column): on a support?
  std::map<std::pair<int32_t, int64_t>, bool> on;
  for (const SparseNode& node : state.nodes) {
    const int64_t cols = state.logits[size_t(node.group)].shape()[1];
    const size_t k = node.columns.size();
    for (int32_t i : node.support)
      on[{node.group, int64_t(node.rows[size_t(i) / k]) * cols + node.columns[size_t(i) % k]}] =
          true;
  }
  sched::ActiveSet active(graph.candidates.size(), sched::kInactive);
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    const ir::Candidate& c = graph.candidates[i];
    const int64_t cols = state.logits[c.arch.index()].shape()[1];
    if (on.count({c.arch.value, int64_t(c.row) * cols + c.column})) active[i] = sched::kActive;
  }
  return active;
}

void recover_all(const ir::Graph& graph, ArchState& state, const LassoOptions& options) {
  for (SparseNode& node : state.nodes) recover_node(node, node_code(state, node), options);
  state.active = support_active_set(graph, state);
}

void init_sparse_codes(ArchState& state, const ir::Graph& graph, const spec::Space& space,
                       const SparseCodeOptions& options, double init_std, uint64_t seed) {
  if (options.measurements < 1)
    throw error("ista: the number of measurements m must be >= 1, got ", options.measurements);
  for (const ir::ArchGroup& g : graph.arch_groups)
    if (g.kind != ir::ArchGroup::Kind::edge_ops)
      throw error(space.file, ": architecture group '", g.name,
                  "' weighs paths (path_weights); ISTA-NAS codes only edge ops");
  Rng rng(seed);
  state.relaxation = Relaxation::sparse_code;
  state.nodes.clear();
  std::vector<int64_t> group_codes(graph.arch_groups.size(), 0);
  std::vector<std::vector<double>> group_b(graph.arch_groups.size());
  for (const spec::Cell& cell : space.cells) {
    int32_t first = -1;
    for (const ir::MixedEdge& m : graph.mixed_edges)
      if (m.cell == cell.name && (first < 0 || m.instance < first)) first = m.instance;
    if (first < 0) continue;  // a fixed cell, or one not in the network
    for (const spec::Node& node : cell.nodes) {
      const std::vector<const ir::MixedEdge*> edges =
          node_edges(graph, cell.name, first, node.name);
      if (edges.empty()) continue;
      if (node.keep <= 0)
        throw error(space.file, ":", node.pointer,
                    ": ISTA-NAS needs the node's support size; give \"keep\" (DARTS: 2)");
      SparseNode n;
      n.label = cell.name + "/" + node.name;
      n.group = edges[0]->arch.value;
      const ir::ArchGroup& group = graph.arch_groups[size_t(n.group)];
      for (const ir::MixedEdge* e : edges) {
        if (e->arch.value != n.group)
          throw error(space.file, ":", node.pointer,
                      ": ISTA-NAS codes a node over one op set; this node's edges use different "
                      "op sets");
        n.rows.push_back(e->row);
      }
      for (size_t c = 0; c < group.columns.size(); ++c)
        if (group.columns[c] != "none") n.columns.push_back(int32_t(c));
      n.m = options.measurements;
      n.keep = node.keep;
      if (n.keep > n.n())
        throw error(space.file, ":", node.pointer, ": keep ", n.keep, " exceeds the node's ", n.n(),
                    " candidate ops");
      for (int64_t i = 0; i < n.m * n.n(); ++i)
        n.a.push_back(options.gaussian ? double(rng.normal()) / std::sqrt(double(n.m))
                                       : double(rng.uniform()));
      std::vector<double> z0(size_t(n.n()));
      for (double& z : z0) z = init_std * double(rng.normal());
      for (int64_t t = 0; t < n.m; ++t) {
        double b = 0;
        for (int64_t i = 0; i < n.n(); ++i) b += n.a[size_t(t * n.n() + i)] * z0[size_t(i)];
        group_b[size_t(n.group)].push_back(b);
      }
      n.offset = group_codes[size_t(n.group)];
      group_codes[size_t(n.group)] += n.m;
      n.z.assign(size_t(n.n()), 0.0);
      state.nodes.push_back(std::move(n));
    }
  }
  state.codes.clear();
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    std::vector<float> b(group_b[g].begin(), group_b[g].end());
    if (b.empty()) b.push_back(0.0f);  // a group no node codes (cannot happen for edge ops)
    state.codes.emplace_back(Tensor::from_vector({int64_t(b.size()), 1}, b), true,
                             "code." + graph.arch_groups[g].name);
  }
  recover_all(graph, state, options.lasso);
  for (SparseNode& n : state.nodes) {
    n.support_changes = 0;
    n.z_change = 0;
  }
}

void recover_sparse_codes(StepContext& ctx) {
  recover_all(ctx.graph, ctx.arch, ctx.options.sparse.lasso);
}

void update_codes(StepContext& ctx) {
  FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture step: no dw
  ctx.arch_optimizer.zero_grad();
  forward_loss(ctx, ctx.val, sparse_code_coefficients(ctx.arch), false).backward();
  ctx.arch_optimizer.step();
}

// ---- One-stage: the evaluation network is searched and trained in one run ----

namespace {
// gamma and beta of every candidate's closing BN (spec network.edge_bn).
std::vector<Var> edge_bn_affine(const ir::Graph& graph, const ir::ParameterStore& params) {
  std::vector<Var> out;
  for (size_t i = 0; i < graph.params.size(); ++i) {
    const std::string& name = graph.params[i].name;
    if (!graph.params[i].candidate.valid()) continue;
    for (const char* tail : {".out_bn.gamma", ".out_bn.beta"})
      if (name.size() > std::strlen(tail) &&
          name.compare(name.size() - std::strlen(tail), std::strlen(tail), tail) == 0)
        out.push_back(params.all()[i]);
  }
  return out;
}
}  // namespace

void recover_sparse_codes_until_converged(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  if (arch.codes_frozen) return;  // b and the supports stay as they converged
  bool support_changed = false;
  bool z_settled = true;
  for (SparseNode& node : arch.nodes) {
    support_changed =
        recover_node(node, node_code(arch, node), ctx.options.sparse.lasso) || support_changed;
    z_settled = z_settled && node.z_change <= ctx.options.sparse.epsilon;
  }
  arch.active = support_active_set(ctx.graph, arch);
  // The first step recovers from the initial b again (nothing updated it yet): no evidence
  // of convergence, so the rule is checked from the second step on.
  if (ctx.step > 0 && z_settled && !support_changed) arch.codes_frozen = true;
}

void update_weights_and_codes(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  Sgd& sgd = ctx.weight_optimizer;
  const bool searching = !arch.codes_frozen;
  sgd.zero_grad();
  ctx.arch_optimizer.zero_grad();
  {
    // While searching, the edge BNs' gamma, beta stay at 1, 0: b alone scales each op.
    std::vector<Var> frozen;
    if (searching) frozen = edge_bn_affine(ctx.graph, ctx.params);
    FreezeGuard freeze(frozen);
    const std::vector<Var> coefficients =
        searching ? sparse_code_coefficients(arch) : current_coefficients(arch);
    forward_loss(ctx, ctx.train, coefficients, true).backward();
  }
  ctx.metrics.grad_norm = clip_or_measure_grad_norm(sgd.params(), ctx.grad_clip);
  sgd.step();
  if (searching) ctx.arch_optimizer.step();
}

}  // namespace cellgraph::algorithms
