// The architecture state algorithm passes update: one logits matrix per architecture group
// of the graph (alpha in DARTS), and the active set the scheduler runs (one flag per
// candidate). Algorithms add their own state beside it (NASP's discrete matrix, ISTA's b
// and z); what the scheduler sees is only the coefficients and the active set.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"
#include "engine/sched/plan.h"

namespace cellgraph::algorithms {

struct ArchState {
  std::vector<Var> logits;  // per group: [rows, columns], requires a gradient
  sched::ActiveSet active;  // per graph candidate
};

// Logits start at init_std * N(0, 1), except entries the spec initialises (ArchGroup::init);
// every candidate active.
ArchState initial_arch_state(const ir::Graph& graph, double init_std, uint64_t seed);

// softmax over each row of each group's logits: the DARTS relaxation. Records autodiff
// when the logits require a gradient and grad mode is on.
std::vector<Var> softmax_coefficients(const ArchState& state);

// Row-major host copies of each group's softmax, for derivation and logging.
std::vector<std::vector<float>> softmax_values(const ArchState& state);

}  // namespace cellgraph::algorithms
