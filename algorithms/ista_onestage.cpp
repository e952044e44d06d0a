// ISTA-NAS one-stage (docs/algorithms.md): the evaluation network is searched and trained
// in one run. Weights and codes b share one backward of L_train per step until the codes
// converge (every node's ||z_new - z_old|| <= epsilon with an unchanged support); then b
// and the supports freeze, and the edge BNs' affine parameters, held at 1 and 0 while
// searching so that b alone scales each op, train with the rest. The result is a trained
// network: the coefficients are absorbed into the kept ops' closing BNs (absorb.h).
#include "algorithms/ista_onestage.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "algorithms/absorb.h"
#include "algorithms/ista.h"
#include "engine/error.h"
#include "engine/optim/clip.h"
#include "engine/optim/schedule.h"

namespace cellgraph::algorithms {

namespace {
// Which node of the sparse codes a candidate belongs to (null: none, e.g. a fixed edge).
const SparseNode* node_of(const SparseCodes& sparse, const ir::Candidate& c) {
  for (const SparseNode& n : sparse.nodes)
    if (n.group == c.arch.value && std::find(n.rows.begin(), n.rows.end(), c.row) != n.rows.end())
      return &n;
  return nullptr;
}

// gamma and beta of the candidates' closing BNs (spec network.edge_bn) whose node is still
// searching (`all`: every candidate's, the rule checked per step).
std::vector<Var> searching_edge_bn_affine(const ir::Graph& graph, const ir::ParameterStore& params,
                                          const SparseCodes& sparse, bool all) {
  std::vector<Var> out;
  for (size_t i = 0; i < graph.params.size(); ++i) {
    const std::string& name = graph.params[i].name;
    if (!graph.params[i].candidate.valid()) continue;
    if (!all) {
      const SparseNode* n = node_of(sparse, graph.candidate(graph.params[i].candidate));
      if (n == nullptr || n->frozen) continue;
    }
    for (const char* tail : {".out_bn.gamma", ".out_bn.beta"})
      if (name.size() > std::strlen(tail) &&
          name.compare(name.size() - std::strlen(tail), std::strlen(tail), tail) == 0)
        out.push_back(params.all()[i]);
  }
  return out;
}

// The paper checks the termination rule once per epoch, per node; cellgraph's first
// version checked it every step for all nodes at once (runs written before the option
// resume with it).
bool per_epoch(const HyperValues& hyper) { return hyper.choice("ista-termination") == "epoch"; }

// `count` numbers written as text (exact doubles) in a metadata value.
template <typename T>
std::vector<T> parse_numbers(const io::Checkpoint& ckpt, const std::string& key, size_t count) {
  std::vector<T> out;
  const std::string& text = ckpt.meta(key);
  const char* p = text.c_str();
  while (*p != 0) {
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) break;
    out.push_back(T(v));
    p = end;
  }
  if (out.size() != count)
    throw error(ckpt.source(), ": metadata '", key, "': expected ", count, " numbers");
  return out;
}
}  // namespace

void recover_sparse_codes_until_converged(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  SparseCodes& sparse = sparse_codes(arch);
  if (sparse.codes_frozen) return;  // b and the supports stay as they converged
  const SparseCodeOptions options = sparse_code_options(ctx.hyper);
  if (per_epoch(ctx.hyper)) {  // frozen nodes keep their support; the check is end_epoch's
    for (SparseNode& node : sparse.nodes)
      if (!node.frozen) recover_node(node, node_code(arch, node), options.lasso);
    arch.active = support_active_set(ctx.graph, arch);
    return;
  }
  bool support_changed = false;
  bool z_settled = true;
  for (SparseNode& node : sparse.nodes) {
    support_changed = recover_node(node, node_code(arch, node), options.lasso) || support_changed;
    z_settled = z_settled && node.z_change <= options.epsilon;
  }
  arch.active = support_active_set(ctx.graph, arch);
  // The first step recovers from the initial b again (nothing updated it yet): no evidence
  // of convergence, so the rule is checked from the second step on.
  if (ctx.step > 0 && z_settled && !support_changed) sparse.codes_frozen = true;
}

void update_weights_and_codes(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  SparseCodes& sparse = sparse_codes(arch);
  Sgd& sgd = ctx.weight_optimizer;
  const bool searching = !sparse.codes_frozen;
  sgd.zero_grad();
  ctx.arch_optimizer.zero_grad();
  {
    // While a node searches, its ops' closing BNs keep gamma, beta at 1, 0: b alone scales
    // each op.
    std::vector<Var> frozen;
    if (searching)
      frozen = searching_edge_bn_affine(ctx.graph, ctx.params, sparse, !per_epoch(ctx.hyper));
    FreezeGuard freeze(frozen);
    const std::vector<Var> coefficients =
        searching ? sparse_code_coefficients(arch) : current_coefficients(arch);
    forward_loss(ctx, ctx.train, coefficients, true).backward();
  }
  ctx.metrics.grad_norm = clip_or_measure_grad_norm(sgd.params(), ctx.grad_clip);
  sgd.step();
  if (!searching) return;
  // A frozen node's b stays exactly as it froze (Adam would still move it by momentum).
  auto code_of = [&](const SparseNode& n) {
    return sparse.codes[size_t(n.group)].value().narrow(0, n.offset, n.m);
  };
  std::vector<Tensor> kept;
  for (const SparseNode& n : sparse.nodes)
    if (n.frozen) kept.push_back(code_of(n).clone());
  ctx.arch_optimizer.step();
  size_t k = 0;
  for (const SparseNode& n : sparse.nodes)
    if (n.frozen) code_of(n).copy_from(kept[k++]);
}

namespace {
class IstaOnestage final : public SparseCodingAlgorithm {
 public:
  IstaOnestage()
      : SparseCodingAlgorithm(
            "ista-onestage",
            "ISTA-NAS, one-stage: the evaluation network searched and trained at once; weights "
            "and b share L_train until the codes converge, then b freezes and the edge BNs "
            "train") {}
  std::vector<Hyperparameter> hyperparameters() const override {
    std::vector<Hyperparameter> table = sparse_code_hyperparameters();
    Hyperparameter epsilon =
        number("ista-epsilon", 1e-3, 0, 1e30,
               "b freezes once every node's ||z_new - z_old|| <= this with unchanged supports",
               "ISTA-NAS' termination rule, epsilon = 1e-3");
    epsilon.optional_in_config = true;
    table.push_back(epsilon);
    Hyperparameter termination =
        choice("ista-termination", {"epoch", "step"},
               "epoch: each node's rule checked at every epoch end, the node's b freezes on its "
               "own; lr constant while searching, then cosine over the remaining epochs (the "
               "paper and its code); step: all nodes checked every step, cosine throughout",
               "ISTA-NAS (one-stage)");
    termination.optional_in_config = true;
    termination.absent_value = "step";  // what runs before this option did
    table.push_back(termination);
    return table;
  }
  std::vector<NamedPass> passes() const override {
    return {{"recover_sparse_codes_until_converged", recover_sparse_codes_until_converged},
            {"update_weights_and_codes", update_weights_and_codes}};
  }
  ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                          const HyperValues& hyper, uint64_t seed) const override {
    if (!space.network.edge_bn)
      throw error(space.file, ":", space.network.pointer, ": ", name(),
                  " searches the evaluation network with a BN closing every edge op; set "
                  "\"edge_bn\": true in the network");
    return initial_state_checked(SparseCodingAlgorithm::initial_state(graph, space, hyper, seed));
  }
  bool has_validation_step() const override { return false; }

  ArchState initial_state_checked(ArchState state) const {
    for (SparseNode& n : sparse_codes(state).nodes) {
      n.z_checked = n.z;
      n.support_checked = n.support;
    }
    return state;
  }

  // Per-epoch termination: a node whose code moved by at most epsilon since the last check,
  // with the same support, freezes; once every node has, the search is over and the
  // network trains on (the evaluation schedule).
  void end_epoch(const ir::Graph& graph, ArchState& arch, const HyperValues& hyper,
                 int64_t epoch) const override {
    SparseCodingAlgorithm::end_epoch(graph, arch, hyper, epoch);
    if (!per_epoch(hyper)) return;
    SparseCodes& sparse = sparse_codes(arch);
    if (sparse.codes_frozen) return;
    const double epsilon = hyper.number("ista-epsilon");
    bool all = true;
    for (SparseNode& n : sparse.nodes) {
      if (!n.frozen) {
        double change = 0;
        for (size_t i = 0; i < n.z.size(); ++i)
          change += (n.z[i] - n.z_checked[i]) * (n.z[i] - n.z_checked[i]);
        n.frozen = std::sqrt(change) <= epsilon && n.support == n.support_checked;
        n.z_checked = n.z;
        n.support_checked = n.support;
      }
      all = all && n.frozen;
    }
    if (all) {
      sparse.codes_frozen = true;
      sparse.frozen_epoch = epoch + 1;
    }
  }

  // The authors' schedule: constant while searching, then cosine from lr to lr_min over the
  // epochs that remain once every code froze.
  float weight_lr(const ArchState& arch, const HyperValues& hyper, const LoopOptions& loop,
                  int64_t epoch) const override {
    if (!per_epoch(hyper)) return SparseCodingAlgorithm::weight_lr(arch, hyper, loop, epoch);
    const SparseCodes& sparse = sparse_codes(arch);
    if (!sparse.codes_frozen || epoch < sparse.frozen_epoch) return loop.lr;
    const int64_t remaining = std::max<int64_t>(loop.epochs - sparse.frozen_epoch, 1);
    return CosineSchedule(loop.lr, loop.lr_min, remaining).lr_at(epoch - sparse.frozen_epoch);
  }

  void save(const ir::Graph& graph, const ArchState& arch, io::Checkpoint& ckpt) const override {
    SparseCodingAlgorithm::save(graph, arch, ckpt);
    const SparseCodes& sparse = sparse_codes(arch);
    ckpt.set_meta("sparse/frozen_epoch", std::to_string(sparse.frozen_epoch));
    for (const SparseNode& n : sparse.nodes) {
      std::string z, support;
      for (double v : n.z_checked) z += (z.empty() ? "" : " ") + io::format_double(v);
      for (int32_t i : n.support_checked)
        support += (support.empty() ? "" : " ") + std::to_string(i);
      ckpt.set_meta("sparse/" + n.label + "/node_frozen", n.frozen ? "1" : "0");
      ckpt.set_meta("sparse/" + n.label + "/z_checked", z);
      ckpt.set_meta("sparse/" + n.label + "/support_checked", support);
    }
  }

  void restore(const ir::Graph& graph, ArchState& arch, const io::Checkpoint& ckpt,
               bool full) const override {
    SparseCodingAlgorithm::restore(graph, arch, ckpt, full);
    SparseCodes& sparse = sparse_codes(arch);
    // A checkpoint of the rule checked per step has none of these: every node follows the
    // global flag, and the last check is the current code.
    const bool per_node = ckpt.has_meta("sparse/frozen_epoch");
    sparse.frozen_epoch = per_node ? ckpt.meta_int("sparse/frozen_epoch") : -1;
    for (SparseNode& n : sparse.nodes) {
      const std::string key = "sparse/" + n.label;
      n.frozen = per_node ? ckpt.meta(key + "/node_frozen") == "1" : sparse.codes_frozen;
      n.z_checked = n.z;
      n.support_checked = n.support;
      if (!per_node || !full) continue;
      n.z_checked = parse_numbers<double>(ckpt, key + "/z_checked", size_t(n.n()));
      n.support_checked = parse_numbers<int32_t>(ckpt, key + "/support_checked", size_t(n.keep));
    }
  }
  bool trains_network() const override { return true; }
  std::string recurrent_refusal() const override {
    return "it absorbs each kept op's coefficient into the op's closing batch norm, and the "
           "recurrent ops (tanh, relu, sigmoid, identity) have none";
  }
  TrainedNetwork trained_network(const spec::Space& space,
                                 const io::Checkpoint& ckpt) const override {
    Absorbed a = absorb_from_checkpoint(space, ckpt);
    return {std::move(a.space), std::move(a.graph), std::move(a.params),
            "coefficients absorbed into the edge BNs"};
  }
};
}  // namespace

const Algorithm& ista_onestage_algorithm() {
  static const IstaOnestage kIstaOnestage;
  return kIstaOnestage;
}

}  // namespace cellgraph::algorithms
