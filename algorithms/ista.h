// ISTA-NAS (Yang, Li, You, Zhuang, Wang, Lin, NeurIPS 2020): architecture search as sparse
// coding. The pieces behind recover_sparse_codes / update_codes (search_step.h), exposed
// for tests and for derivation.
#pragma once

#include <cstdint>

#include "algorithms/arch_state.h"
#include "algorithms/search_step.h"
#include "engine/ir/graph.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// Builds the nodes of every searchable cell type (its first instance; instances share the
// rows), samples each A_j (seeded) and an initial code z_0 ~ init_std * N(0, 1) with
// b_j = A_j z_0, then recovers the first support. Sets relaxation, codes, nodes, active.
// Throws Error naming the spec place for a node without `keep`, edges of one node in
// different groups, or path weights.
void init_sparse_codes(ArchState& state, const ir::Graph& graph, const spec::Space& space,
                       const SparseCodeOptions& options, double init_std, uint64_t seed);

// z_j <- LASSO(A_j, b_j) warm-started at the previous z_j; the support becomes the top-s
// |z| (ties: lower index). Updates the node's statistics; returns whether the support changed.
bool recover_node(SparseNode& node, const std::vector<double>& b, const LassoOptions& options);

// Recovers every node from the current codes and sets the active set to the supports.
void recover_all(const ir::Graph& graph, ArchState& state, const LassoOptions& options);

// The node's b_j as doubles, read from its group's code vector.
std::vector<double> node_code(const ArchState& state, const SparseNode& node);

// Active: the candidates on some node's support (every instance of the cell type).
sched::ActiveSet support_active_set(const ir::Graph& graph, const ArchState& state);

}  // namespace cellgraph::algorithms
