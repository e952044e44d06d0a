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
#include "engine/tensor/random.h"
#include "ops/ops.h"

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

SparseCodes& sparse_codes(ArchState& state) {
  auto* codes = dynamic_cast<SparseCodes*>(state.extra.get());
  CG_ASSERT(codes != nullptr, "the architecture state has no sparse codes");
  return *codes;
}

const SparseCodes& sparse_codes(const ArchState& state) {
  const auto* codes = dynamic_cast<const SparseCodes*>(state.extra.get());
  CG_ASSERT(codes != nullptr, "the architecture state has no sparse codes");
  return *codes;
}

std::vector<double> node_code(const ArchState& state, const SparseNode& node) {
  // A host copy of the node's b_j: the LASSO solve runs on the host in double (lasso.cpp:
  // tiny per-node problems), whatever the codes' device.
  const Tensor& codes = sparse_codes(state).codes[size_t(node.group)].value();
  const std::vector<float> b = codes.narrow(0, node.offset, node.m).to_vector();
  return std::vector<double>(b.begin(), b.end());
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
  for (const SparseNode& node : sparse_codes(state).nodes) {
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
  for (SparseNode& node : sparse_codes(state).nodes)
    recover_node(node, node_code(state, node), options);
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
  state.extra = ExtraState(std::make_unique<SparseCodes>());
  SparseCodes& sparse = sparse_codes(state);
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
      // A one-hot row (spec init_one_hot) codes e_k, and the LASSO starts from z_0 itself:
      // b = A z_0 makes z_0 a point of zero residual, so the warm start keeps it (from 0,
      // the solver would drift to another of the many codes with that b when m < n).
      bool one_hot = false;
      for (size_t i = 0; i < z0.size(); ++i) {
        const int32_t hot = group.one_hot[size_t(n.rows[i / n.columns.size()])];
        if (hot >= 0) z0[i] = n.columns[i % n.columns.size()] == hot ? 1.0 : 0.0;
        one_hot |= hot >= 0;
      }
      for (int64_t t = 0; t < n.m; ++t) {
        double b = 0;
        for (int64_t i = 0; i < n.n(); ++i) b += n.a[size_t(t * n.n() + i)] * z0[size_t(i)];
        group_b[size_t(n.group)].push_back(b);
      }
      n.offset = group_codes[size_t(n.group)];
      group_codes[size_t(n.group)] += n.m;
      n.z = one_hot ? z0 : std::vector<double>(size_t(n.n()), 0.0);
      sparse.nodes.push_back(std::move(n));
    }
  }
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    std::vector<float> b(group_b[g].begin(), group_b[g].end());
    if (b.empty()) b.push_back(0.0f);  // a group no node codes (cannot happen for edge ops)
    sparse.codes.emplace_back(Tensor::from_vector({int64_t(b.size()), 1}, b), true,
                              "code." + graph.arch_groups[g].name);
  }
  recover_all(graph, state, options.lasso);
  for (SparseNode& n : sparse.nodes) {
    n.support_changes = 0;
    n.z_change = 0;
  }
}

void recover_sparse_codes(StepContext& ctx) {
  recover_all(ctx.graph, ctx.arch, sparse_code_options(ctx.hyper).lasso);
}

void update_codes(StepContext& ctx) {
  FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture step: no dw
  ctx.arch_optimizer.zero_grad();
  forward_loss(ctx, ctx.val, sparse_code_coefficients(ctx.arch), false).backward();
  ctx.arch_optimizer.step();
}

std::vector<Var> sparse_code_coefficients(const ArchState& state) {
  const SparseCodes& sparse = sparse_codes(state);
  std::vector<Var> out;
  for (size_t g = 0; g < state.logits.size(); ++g) {
    const int64_t rows = state.logits[g].shape()[0], cols = state.logits[g].shape()[1];
    const int64_t codes = sparse.codes[g].shape()[0];
    // c = M b + d with M [rows * cols, sum m] holding A_{j,S}^T in the supported rows and
    // d = -E_SS z_S: a constant map, so the gradient reaches b through A_S only.
    std::vector<float> map(size_t(rows * cols * codes), 0.0f), shift(size_t(rows * cols), 0.0f);
    for (const SparseNode& node : sparse.nodes) {
      if (node.group != int32_t(g)) continue;
      const int64_t n = node.n(), k = int64_t(node.columns.size());
      for (int32_t i : node.support) {
        const int64_t flat = int64_t(node.rows[size_t(i / k)]) * cols + node.columns[size_t(i % k)];
        for (int64_t t = 0; t < node.m; ++t)
          map[size_t(flat * codes + node.offset + t)] = float(node.a[size_t(t * n + i)]);
        double e_z = 0;  // (E_SS z_S)_i
        for (int32_t j : node.support) {
          double dot = 0;
          for (int64_t t = 0; t < node.m; ++t)
            dot += node.a[size_t(t * n + i)] * node.a[size_t(t * n + j)];
          e_z += (dot - (i == j ? 1.0 : 0.0)) * node.z[size_t(j)];
        }
        shift[size_t(flat)] = float(-e_z);
      }
    }
    const Device device = sparse.codes[g].device();
    const Var product =
        ops::matmul(Var(Tensor::from_vector({rows * cols, codes}, map, device)), sparse.codes[g]);
    const Var c = ops::add(product, Var(Tensor::from_vector({rows * cols, 1}, shift, device)));
    out.push_back(ops::reshape(c, {rows, cols}));
  }
  return out;
}

std::vector<Hyperparameter> sparse_code_hyperparameters() {
  std::vector<Hyperparameter> table = {
      integer("ista-m", 7, 1, 1000000, "measurements m per node (rows of A_j, length of b_j)",
              "ISTA-NAS: m = 7 for the DARTS cell"),
      choice("ista-dictionary", {"uniform", "gaussian"},
             "A_j entries uniform [0,1) or gaussian N(0,1/m)", "the authors' code: uniform"),
      number("ista-lambda", 1e-5, 0, 1e30, "l1 weight lambda of the LASSO", "ISTA-NAS"),
      choice("ista-solver", {"fista", "ista"}, "LASSO solver"),
      number("ista-tolerance", 1e-7, 0, 1e30,
             "the solver stops when z moves by at most this (max-norm)"),
      integer("ista-iterations", 1000, 1, 1000000000, "iteration cap of the solver per step")};
  for (Hyperparameter& h : table) h.optional_in_config = true;  // added after the first runs
  return table;
}

SparseCodeOptions sparse_code_options(const HyperValues& hyper) {
  SparseCodeOptions o;
  o.measurements = hyper.integer("ista-m");
  o.gaussian = hyper.choice("ista-dictionary") == "gaussian";
  o.lasso = {.lambda = hyper.number("ista-lambda"),
             .tolerance = hyper.number("ista-tolerance"),
             .max_iterations = int(hyper.integer("ista-iterations")),
             .fista = hyper.choice("ista-solver") == "fista"};
  if (hyper.has("ista-epsilon")) o.epsilon = hyper.number("ista-epsilon");
  return o;
}

namespace {
// ISTA-NAS: the node keeps exactly its support, one edge per supported (edge, op) pair, so
// two ops on one incoming edge become two parallel edges.
void derive_node_support(spec::Node& node, const spec::Cell& cell, const ir::Graph& g,
                         const ArchState& arch) {
  const SparseNode* sparse = nullptr;
  for (const SparseNode& n : sparse_codes(arch).nodes)
    if (n.label == cell.name + "/" + node.name) sparse = &n;
  if (sparse == nullptr) return;  // no mixed edge into this node
  const ir::ArchGroup& group = g.arch_groups[size_t(sparse->group)];
  const size_t k = sparse->columns.size();
  std::vector<spec::Edge> kept;
  for (size_t e = 0; e < node.edges.size(); ++e) {
    const spec::Edge& edge = node.edges[e];
    if (edge.ops.size() == 1) {  // a fixed edge stays
      kept.push_back(edge);
      continue;
    }
    const ir::MixedEdge* m = find_mixed_edge(g, cell.name, node.name, int32_t(e));
    CG_ASSERT(m != nullptr, "no architecture row for ", cell.name, "/", node.name, "/e", e);
    for (int32_t i : sparse->support) {
      if (sparse->rows[size_t(i) / k] != m->row) continue;
      spec::Edge one = edge;
      one.ops = {group.columns[size_t(sparse->columns[size_t(i) % k])]};
      one.op_set.clear();
      one.init.clear();
      kept.push_back(std::move(one));
    }
  }
  node.edges = std::move(kept);
  node.path_weights = false;
}

// The supports as "edge: op" entries, for records.
std::vector<std::string> support_labels(const ir::Graph& graph, const SparseNode& n) {
  std::vector<std::string> out;
  const size_t k = n.columns.size();
  const ir::ArchGroup& g = graph.arch_groups[size_t(n.group)];
  for (int32_t i : n.support)
    out.push_back(g.row_labels[size_t(n.rows[size_t(i) / k])] + ": " +
                  g.columns[size_t(n.columns[size_t(i) % k])]);
  return out;
}
}  // namespace

std::vector<Hyperparameter> SparseCodingAlgorithm::hyperparameters() const {
  return sparse_code_hyperparameters();
}

ArchState SparseCodingAlgorithm::initial_state(const ir::Graph& graph, const spec::Space& space,
                                               const HyperValues& hyper, uint64_t seed) const {
  ArchState state = Algorithm::initial_state(graph, space, hyper, seed);
  init_sparse_codes(state, graph, space, sparse_code_options(hyper), space.arch.init_std, seed + 1);
  return state;
}

std::vector<Var> SparseCodingAlgorithm::coefficients(const ArchState& arch) const {
  NoGradGuard no_grad;
  return sparse_code_coefficients(arch);
}

std::vector<Var> SparseCodingAlgorithm::relaxed_coefficients(const ArchState& arch) const {
  return sparse_code_coefficients(arch);
}

std::vector<Var>& SparseCodingAlgorithm::variables(ArchState& arch) const {
  return sparse_codes(arch).codes;
}

Derived SparseCodingAlgorithm::derive(const spec::Space& space, const ir::Graph& graph,
                                      const ArchState& arch) const {
  return derive_per_node(space, [&](spec::Node& node, const spec::Cell& cell) {
    derive_node_support(node, cell, graph, arch);
  });
}

// Beyond the codes: per node the support, the code z (exact: its doubles as text) and the
// epoch's statistics. A_j is not stored: it is a function of the seed.
void SparseCodingAlgorithm::save(const ir::Graph& graph, const ArchState& arch,
                                 io::Checkpoint& ckpt) const {
  const SparseCodes& sparse = sparse_codes(arch);
  for (const Var& code : sparse.codes) ckpt.add("code/" + std::string(code.name()), code.value());
  // The coefficients, for absorption without the run's options (one-stage export).
  const std::vector<Var> c = coefficients(arch);
  for (size_t g = 0; g < c.size(); ++g)
    ckpt.add("sparse/coefficients/" + graph.arch_groups[g].name, c[g].value());
  ckpt.set_meta("sparse/frozen", sparse.codes_frozen ? "1" : "0");
  for (const SparseNode& n : sparse.nodes) {
    std::vector<float> support(n.support.begin(), n.support.end());
    ckpt.add("sparse/" + n.label + "/support",
             Tensor::from_vector({int64_t(support.size())}, support));
    std::string z;
    for (double v : n.z) z += (z.empty() ? "" : " ") + io::format_double(v);
    ckpt.set_meta("sparse/" + n.label + "/z", z);
    ckpt.set_meta("sparse/" + n.label + "/support_changes", std::to_string(n.support_changes));
    ckpt.set_meta("sparse/" + n.label + "/z_change", io::format_double(n.z_change));
  }
}

void SparseCodingAlgorithm::restore(const ir::Graph& graph, ArchState& arch,
                                    const io::Checkpoint& ckpt, bool full) const {
  const std::string& src = ckpt.source();
  SparseCodes& sparse = sparse_codes(arch);
  if (full)
    for (Var& code : sparse.codes)
      code.value().copy_from(ckpt.tensor("code/" + std::string(code.name()), code.shape()));
  const std::string& frozen = ckpt.meta("sparse/frozen");
  if (frozen != "0" && frozen != "1")
    throw error(src, ": metadata 'sparse/frozen' is '", frozen, "'; expected 0 or 1");
  sparse.codes_frozen = frozen == "1";
  for (SparseNode& n : sparse.nodes) {
    const std::string key = "sparse/" + n.label;
    const std::vector<float> support = ckpt.tensor(key + "/support", {int64_t(n.keep)}).to_vector();
    n.support.clear();
    for (float i : support) {
      if (!(i >= 0 && i < float(n.n()) && i == std::floor(i)))
        throw error(src, ": '", key, "/support' holds ", i, "; expected an index below ", n.n());
      n.support.push_back(int32_t(i));
    }
    if (!full) continue;
    const std::string& text = ckpt.meta(key + "/z");
    n.z.clear();
    const char* p = text.c_str();
    while (*p != 0) {
      char* end = nullptr;
      n.z.push_back(std::strtod(p, &end));
      if (end == p) break;
      p = end;
    }
    if (int64_t(n.z.size()) != n.n())
      throw error(src, ": metadata '", key, "/z': expected ", n.n(), " numbers");
    n.support_changes = ckpt.meta_int(key + "/support_changes");
    n.z_change = ckpt.meta_double(key + "/z_change");
  }
  arch.active = support_active_set(graph, arch);
}

void SparseCodingAlgorithm::describe_epoch(const ir::Graph& graph, const ArchState& arch,
                                           spec::JsonValue& record) const {
  spec::JsonValue nodes = spec::JsonValue::object();
  for (const SparseNode& n : sparse_codes(arch).nodes) {
    spec::JsonValue node = spec::JsonValue::object();
    spec::JsonValue support = spec::JsonValue::array();
    for (const std::string& s : support_labels(graph, n)) support.push_back(s);
    node.set("support", support);
    node.set("support_changes", n.support_changes);
    node.set("z_change", n.z_change);
    nodes.set(n.label, node);
  }
  if (nodes.size() > 0) record.set("sparse_codes", nodes);
}

void SparseCodingAlgorithm::end_epoch(const ir::Graph& /*graph*/, ArchState& arch,
                                      const HyperValues& /*hyper*/, int64_t /*epoch*/) const {
  for (SparseNode& n : sparse_codes(arch).nodes) n.support_changes = 0;  // counted per epoch
}

namespace {
class Ista final : public SparseCodingAlgorithm {
 public:
  Ista()
      : SparseCodingAlgorithm("ista",
                              "ISTA-NAS, two-stage: per node z = LASSO(A, b) picks the top-s "
                              "support; weights on the supported ops (train), b by Adam (val)") {}
  std::vector<NamedPass> passes() const override {
    return {{"recover_sparse_codes", recover_sparse_codes},
            {"update_weights", update_weights},
            {"update_codes", update_codes}};
  }
};
}  // namespace

const Algorithm& ista_algorithm() {
  static const Ista kIsta;
  return kIsta;
}

}  // namespace cellgraph::algorithms
