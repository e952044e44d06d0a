// ISTA-NAS one-stage (docs/algorithms.md): the evaluation network is searched and trained
// in one run. Weights and codes b share one backward of L_train per step until the codes
// converge (every node's ||z_new - z_old|| <= epsilon with an unchanged support); then b
// and the supports freeze, and the edge BNs' affine parameters, held at 1 and 0 while
// searching so that b alone scales each op, train with the rest. The result is a trained
// network: the coefficients are absorbed into the kept ops' closing BNs (absorb.h).
#include "algorithms/ista_onestage.h"

#include <cstring>

#include "algorithms/absorb.h"
#include "algorithms/ista.h"
#include "engine/error.h"
#include "engine/optim/clip.h"

namespace cellgraph::algorithms {

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
  SparseCodes& sparse = sparse_codes(arch);
  if (sparse.codes_frozen) return;  // b and the supports stay as they converged
  bool support_changed = false;
  bool z_settled = true;
  const SparseCodeOptions options = sparse_code_options(ctx.hyper);
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
  Sgd& sgd = ctx.weight_optimizer;
  const bool searching = !sparse_codes(arch).codes_frozen;
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
    return SparseCodingAlgorithm::initial_state(graph, space, hyper, seed);
  }
  bool has_validation_step() const override { return false; }
  bool trains_network() const override { return true; }
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
