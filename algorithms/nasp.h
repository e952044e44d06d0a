// NASP (Yao, Xu, Tu, Zhu, AAAI 2020): the pieces of its proximal architecture step, exposed
// for tests.
#pragma once

#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/step_context.h"
#include "engine/ir/graph.h"

namespace cellgraph::algorithms {

// NASP's architecture pass: A <- clip(A - lr * dF/dA_bar) at the one-hot A_bar, then A_bar
// from the new A (the active set the weight step trains).
void update_architecture_proximal(StepContext& ctx);

// Per group, the one-hot projection of A (prox onto C1; ties to the lower column): one op
// on every edge (`--nasp-projection edge`).
std::vector<Tensor> one_hot_rows(const ArchState& state);

// The projection the authors' code uses (`--nasp-projection node`, the default): per node,
// the edges derivation would keep — with a `keep: k`, each edge's best op other than none,
// the k edges whose A at that op is largest (ties: lower edge); without keep, every edge
// with its arg-max op — one-hot there, and zero on the node's other edges. The network
// searched is then the cell that will be derived. Falls back to one_hot_rows for a state
// that was not built by NASP's initial_state.
std::vector<Tensor> projected_rows(const ArchState& state);

// prox onto C2: every entry of A clipped into [0, 1].
void project_box(std::vector<Var>& a);

// Per group, per column k: p_k / p_bar, where p_k counts the trained parameters of the
// group's candidates in column k (all cell instances) and p_bar = sum_k p_k.
std::vector<std::vector<double>> parameter_shares(const ir::Graph& graph);

// dR/dA at A for R(A) = sum_k share_k ||A[:, k]||^2: 2 share_k A[e, k], times eta.
Tensor regulariser_gradient(const std::vector<double>& shares, const Tensor& a, float eta);

// The active set for one-hot rows: each row's selected candidate `selected`, the others
// `others` (kInactive for the weight step, kForwardOnly for the architecture step).
sched::ActiveSet selection_active_set(const ir::Graph& graph, const std::vector<Tensor>& hot,
                                      uint8_t others);

}  // namespace cellgraph::algorithms
