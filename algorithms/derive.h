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
//  - SparseNAS: every (edge, op) with a non-zero entry, as parallel edges; nodes left
//    without an edge are removed and the output concatenates the survivors.
//  - A fixed edge in a search cell ranks with weight 1; with path weights (AGD) an edge's
//    strength is its path weight times its best op weight.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "algorithms/arch_state.h"
#include "engine/ir/graph.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

struct Derived {
  spec::Space space;  // the fixed network
  // DARTS Genotype(...) for two-input cells (a list per node when some node does not keep
  // exactly two edges), NATS "|op~j|+..." for one-input cells
  std::string genotype;
  // Starting weights of the fixed network by parameter name, when the search keeps some
  // (Algorithm::derived_weights; RARTS' width search); empty: it trains from scratch.
  std::vector<std::pair<std::string, Tensor>> weights;
};

// The state's algorithm's derivation (Algorithm::derive); for a state without one, the
// ranking rule on its softmax weights. Throws Error for non-finite weights.
Derived derive(const spec::Space& search_space, const ir::Graph& graph, const ArchState& arch);

// The ranking rule above (keep-k, or every edge with its arg-max op) on `weights`: per
// group, the row-major values to rank.
Derived derive_by_ranking(const spec::Space& search_space, const ir::Graph& graph,
                          const std::vector<std::vector<float>>& weights);

// The skeleton every rule shares: copies the space, calls `node_rule` on every node of every
// cell with a mixed edge, names the result "<space>-derived" and writes its genotype. A rule
// replaces the node's edges by fixed ones.
using NodeRule = std::function<void(spec::Node& node, const spec::Cell& cell)>;
Derived derive_per_node(const spec::Space& search_space, const NodeRule& node_rule);

// Where a mixed edge of the spec landed in the graph (null when the edge is fixed).
const ir::MixedEdge* find_mixed_edge(const ir::Graph& graph, const std::string& cell,
                                     const std::string& node, int32_t edge);

// The genotype string of a fixed spec's cells.
std::string genotype_string(const spec::Space& fixed);

}  // namespace cellgraph::algorithms
