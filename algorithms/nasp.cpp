// NASP's architecture step (docs/algorithms.md):
//   A_bar = prox_C1(A)                       one-hot rows at the arg-max
//   A     = prox_C2(A - lr * dF/dA_bar)      F = L_val(w, A_bar) + eta * R(A_bar)
//   A_bar = prox_C1(A)                       the ops the weight step then trains
// dL_val/dA_bar[e, k] = <dL/dx_j, o_k(x_i)> needs every candidate's output, so every
// candidate runs forward; the unselected ones run forward-only (no autodiff, no saved
// activations) and backward flows through the selected ops alone, forming no weight
// gradients. The update is a plain projected gradient step with the architecture
// learning rate, as the paper writes it, or (nasp_adam) an Adam step as in the authors' code.
#include "algorithms/nasp.h"

#include <algorithm>

#include "algorithms/algorithm.h"
#include "engine/error.h"

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
    out.push_back(Tensor::from_vector({rows, cols}, hot));
  }
  return out;
}

void project_box(std::vector<Var>& a) {
  for (Var& v : a) {
    float* p = v.value().data();
    for (int64_t i = 0; i < v.value().numel(); ++i) p[i] = std::clamp(p[i], 0.0f, 1.0f);
  }
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
  Tensor out = a.clone();
  float* d = out.data();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) d[r * cols + k] *= float(2.0 * eta * shares[size_t(k)]);
  return out;
}

sched::ActiveSet selection_active_set(const ir::Graph& graph, const std::vector<Tensor>& hot,
                                      uint8_t others) {
  sched::ActiveSet active(graph.candidates.size(), others);
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    const ir::Candidate& c = graph.candidates[i];
    const Tensor& h = hot[c.arch.index()];
    if (h.data()[int64_t(c.row) * h.dim(1) + c.column] != 0.0f) active[i] = sched::kActive;
  }
  return active;
}

void update_architecture_proximal(StepContext& ctx) {
  ArchState& arch = ctx.arch;
  const std::vector<Tensor> hot = one_hot_rows(arch);
  arch.active = selection_active_set(ctx.graph, hot, sched::kForwardOnly);
  std::vector<Var> coefficients;
  coefficients.reserve(hot.size());
  for (const Tensor& h : hot) coefficients.emplace_back(h, true);
  {
    FreezeGuard freeze(ctx.weight_optimizer.params());  // an architecture step: no dw
    forward_loss(ctx, ctx.val, coefficients, false).backward();
  }
  const float lr = ctx.arch_optimizer.lr();
  const float eta = float(ctx.hyper.number("nasp-eta"));
  const bool adam = ctx.hyper.choice("nasp-optimizer") == "adam";
  const std::vector<std::vector<double>> shares =
      eta != 0 ? parameter_shares(ctx.graph) : std::vector<std::vector<double>>();
  for (size_t g = 0; g < arch.logits.size(); ++g) {
    // dF/dA_bar = dL_val/dA_bar + eta * dR/dA_bar
    Tensor grad = coefficients[g].has_grad() ? coefficients[g].grad().clone()
                                             : Tensor::zeros(arch.logits[g].shape());
    if (eta != 0) {
      const Tensor reg = regulariser_gradient(shares[g], hot[g], eta);
      for (int64_t i = 0; i < grad.numel(); ++i) grad.data()[i] += reg.data()[i];
    }
    if (adam) {
      arch.logits[g].set_grad(grad);
      continue;
    }
    float* a = arch.logits[g].value().data();
    for (int64_t i = 0; i < grad.numel(); ++i) a[i] -= lr * grad.data()[i];
  }
  if (adam) ctx.arch_optimizer.step();
  project_box(arch.logits);
  arch.active = selection_active_set(ctx.graph, one_hot_rows(arch), sched::kInactive);
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
    Hyperparameter optimizer =
        choice("nasp-optimizer", {"sgd", "adam"},
               "sgd: A - arch-lr * grad (the paper); adam: the architecture Adam (the authors' "
               "code); then clip to [0, 1]");
    optimizer.optional_in_config = true;
    return {eta, optimizer};
  }
  std::vector<NamedPass> passes() const override {
    return {{"update_architecture_proximal", update_architecture_proximal},
            {"update_weights", update_weights}};
  }
  ArchState initial_state(const ir::Graph& graph, const spec::Space& space,
                          const HyperValues& hyper, uint64_t seed) const override {
    ArchState state = Algorithm::initial_state(graph, space, hyper, seed);
    project_box(state.logits);  // A_0 = prox_C2(alpha_0)
    return state;
  }
  std::vector<Var> coefficients(const ArchState& arch) const override {
    std::vector<Var> out;
    for (const Tensor& t : one_hot_rows(arch)) out.emplace_back(t);
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
