// Derivation: the fixed architecture a search found, written back in the spec language
// (one op per edge), and its genotype string.
//
// Per node, with weights w = the relaxation's coefficients of the edge (softmax of the
// logits; NASP: the matrix A itself):
//  - `keep: k` given (DARTS): rank the incoming edges by their best weight excluding
//    `none`, keep the top k (ties: lower edge index), each with its best non-none op;
//  - no keep (NATS-Bench): every edge stays, with its arg-max op (none included: the edge
//    then computes zero, as in the NATS-Bench topology strings).
//  - ISTA-NAS: the node's final support, one edge per supported (edge, op) pair (two ops
//    on one incoming edge become parallel edges); no post-hoc projection.
//  - A fixed edge in a search cell ranks with weight 1; with path weights (AGD) an edge's
//    strength is its path weight times its best op weight.
#pragma once

#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "engine/ir/graph.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

struct Derived {
  spec::Space space;     // the fixed network
  std::string genotype;  // DARTS Genotype(...) for two-input cells, NATS "|op~j|+..." for one
};

Derived derive(const spec::Space& search_space, const ir::Graph& graph, const ArchState& arch);

// The genotype string of a fixed spec's cells.
std::string genotype_string(const spec::Space& fixed);

}  // namespace cellgraph::algorithms
