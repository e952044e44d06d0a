// RARTS (Xue, Qi, Xin, IEEE Access 2022): its state beyond the logits and its three
// passes, exposed for tests (the paper's toy problem runs these passes through a
// StepContext::loss_model; tests/test_rarts.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/hyperparameters.h"
#include "algorithms/step_context.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/sgd.h"

namespace cellgraph::algorithms {

// The second network y (same graph, its own weights, BN buffers and SGD) and the latency
// matrices. y's optimizer is made at the first step, with the weight optimizer's options
// (the session's SGD settings, which the algorithm does not otherwise see); its learning
// rate follows the weight optimizer's schedule every step.
struct RartsState final : AlgorithmState {
  std::unique_ptr<ir::ParameterStore> y;
  std::unique_ptr<Sgd> y_optimizer;  // null before the first step
  bool copy_w = false;               // y starts as a copy of w (--rarts-y-init copy)
  bool started = false;              // the first step has run (y copied, optimizer made)
  std::vector<Tensor> latency;       // per group Lat_g [rows, ops] in ms; empty: no table
  double distance = 0;               // ||y - w|| after the latest y step
  // Width search: per group, whether it holds channel scores (gamma, read as they are, no
  // softmax), and the fraction of scored channels derivation keeps.
  std::vector<bool> channel_scores;
  double width_keep = 0.6;

  std::unique_ptr<AlgorithmState> clone() const override;
};
RartsState& rarts_state(ArchState& arch);
const RartsState& rarts_state(const ArchState& arch);

// Sets arch.extra: y seeded from `seed` (independent of w), the latency table of
// --latency (when given) as matrices for `graph`, the width search's groups and keep. Throws Error
// for --latency-weight > 0 without a table, or a table that lacks an edge or op of the graph.
void init_rarts_state(ArchState& arch, const ir::Graph& graph, const HyperValues& hyper,
                      uint64_t seed);

// The step, Gauss-Seidel: each pass uses what the passes before it updated.
// 1. w <- SGD on lambda * dL_t(w, alpha)/dw + beta (w - y)            (train batch)
void rarts_update_w(StepContext& ctx);
// 2. y <- SGD on dL_v(y, alpha)/dy + beta (y - w_new)                 (validation batch)
void rarts_update_y(StepContext& ctx);
// 3. alpha <- Adam on lambda * dL_t(w_new)/dalpha + dL_v(y_new)/dalpha
//              + mu * d<softmax(alpha), Lat>/dalpha
//    (channel scores gamma: the same two gradients + rho * sign(gamma), no latency term)
void rarts_update_architecture(StepContext& ctx);

// The relaxation: softmax of each row of the op (and path) groups, the channel scores as
// they are. Recorded for autodiff in grad mode.
std::vector<Var> rarts_coefficients(const ArchState& arch);

}  // namespace cellgraph::algorithms
