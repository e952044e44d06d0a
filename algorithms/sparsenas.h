// SparseNAS (Wu, Liu, Huang, Zhang, Van Gool, AAAI 2021): the supernet as a sparse group
// lasso problem over a real architecture matrix A, solved by a hierarchical accelerated
// proximal gradient (HAPG, or AdamHAPG) on the DARTS architecture gradient; derivation keeps
// every non-zero (edge, op) entry ("mixed paths"). The pieces are exposed for tests: the
// proximal operators and one HAPG iteration on plain vectors, the passes, the state.
// docs/algorithms.md has the equations and the choices where the paper is silent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/step_context.h"
#include "engine/ir/graph.h"
#include "engine/sched/plan.h"

namespace cellgraph::algorithms {

// ---- The proximal operators, on plain vectors ----

// Prox of the weighted l1 norm: z_i <- sgn(z_i) (|z_i| - t_i)_+ (one threshold per entry).
void prox_l1(std::vector<double>& z, const std::vector<double>& thresholds);
// Prox of t ||.||_2 on one group: z <- (1 - t / ||z||_2)_+ z (zero when ||z|| <= t).
void prox_group(std::vector<double>& z, double threshold);
// The sparse group lasso's prox in HAPG's order: prox_l1 on every entry first, then
// prox_group on each group (its entries given by index into z).
void sparse_group_prox(std::vector<double>& z, const std::vector<double>& l1_thresholds,
                       const std::vector<std::vector<int64_t>>& groups,
                       const std::vector<double>& group_thresholds);
// The median (the mean of the two middle values for an even count); v not empty.
double median_of(std::vector<double> v);

// ---- One HAPG iteration ----

struct HapgSettings {
  double lr = 0;       // eta: HAPG's step, or AdamHAPG's base step
  double lambda = 0;   // lambda of Omega
  double alpha = 0.5;  // the l1 share of Omega
  bool adam = false;   // AdamHAPG: z from an Adam step, per-entry steps in the thresholds
  double beta1 = 0.5, beta2 = 0.999, eps = 1e-8;
};

// HAPG's iterate, flat over every entry of A (all architecture groups concatenated).
struct HapgVectors {
  std::vector<double> a;     // where the gradient is taken: the network's A
  std::vector<double> x;     // the last prox output: the architecture derivation reads
  std::vector<double> v;     // x_k - x_{k-1}
  std::vector<double> m, s;  // AdamHAPG's first and second moments
  int64_t k = 0;             // iterations done
};

// u_k = (k - 1) / (k + 2): 0 at k = 1 (and for k <= 1).
double hapg_momentum(int64_t k);

// Iteration k = it.k + 1 on `grad` (dL/dA at it.a), with Omega's groups (indices into the
// flat vectors) and their sizes:
//   z = a - eta g                       (AdamHAPG: z_i = a_i - eta_i m_hat_i,
//                                         eta_i = eta / (sqrt(s_hat_i) + eps))
//   x = prox_group(prox_l1(z))          l1 threshold eta_i lambda alpha, group threshold
//                                         sqrt|G| eta_G lambda (1 - alpha), eta_G the median
//                                         of eta_i over G (HAPG: eta)
//   v = x - a + u_{k-1} v,  a = x + u_k v
// `known` (empty: every entry): entries whose gradient was computed; the others hold
// (z_i = a_i, their Adam moments untouched).
void hapg_iteration(HapgVectors& it, const std::vector<double>& grad,
                    const std::vector<std::vector<int64_t>>& groups, const HapgSettings& settings,
                    const std::vector<uint8_t>& known = {});

// ---- The search state ----

// Omega's group G_n: every (incoming mixed edge, op) entry of one node.
struct SparseGroup {
  std::string label;             // "normal/n2"
  std::vector<int64_t> entries;  // flat indices over the concatenated groups
};

// What SparseNAS keeps beyond A (ArchState::logits): per architecture group, row-major
// like A, the prox output x, the momentum v and AdamHAPG's moments; the iteration count;
// the groups; and the statistics since the last epoch record.
struct SparseNasState final : AlgorithmState {
  std::vector<std::vector<float>> x, v, m, s;
  int64_t iterations = 0;
  std::vector<SparseGroup> groups;
  std::vector<int64_t> offsets;  // where each architecture group starts in the flat vectors
  double threshold = 0;          // derivation keeps |x| > threshold
  // The latest step's lambda and eta, and sums over the epoch's steps of the candidates
  // run: the weight step's, and per architecture pass with backward and forward-only.
  double lambda = 0, lr = 0;
  int64_t steps = 0, weight_candidates = 0, arch_backward = 0, arch_forward_only = 0;
  std::unique_ptr<AlgorithmState> clone() const override {
    return std::make_unique<SparseNasState>(*this);
  }
};
SparseNasState& sparsenas_state(ArchState& arch);
const SparseNasState& sparsenas_state(const ArchState& arch);

// The active set of A's non-zero entries (every instance of a cell type); zero entries
// get `zero` (kInactive, or kForwardOnly for the architecture gradient).
sched::ActiveSet nonzero_active_set(const ir::Graph& graph, const ArchState& arch, uint8_t zero);

// Candidates a plan runs: with autodiff (kActive) and forward-only.
struct CandidateCounts {
  int64_t recorded = 0, forward_only = 0;
};
CandidateCounts candidates_run(const ir::Graph& graph, const sched::Plan& plan);

// ---- The passes ----

// g = dL_val/dA left in A's grad(): DARTS' second-order gradient (default) or the first
// order. Zero entries of A run forward-only (their gradient is <dL/dx_j, o_k(x_i)>, which
// the proximal step needs to revive them), or not at all on the steps --sparsenas-revive-every
// skips.
void sparsenas_architecture_gradient(StepContext& ctx);
// One HAPG (or AdamHAPG) iteration on A with lambda and eta of this epoch; then the weight
// step's active set: A's non-zero entries.
void sparsenas_proximal_step(StepContext& ctx);

}  // namespace cellgraph::algorithms
