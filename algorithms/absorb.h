// ISTA-NAS one-stage's last step: the searched supernet becomes a fixed network with its
// weights. Each node keeps its support (derive()), and each kept op's closing BN
// (spec network.edge_bn) absorbs the op's coefficient: gamma' = c * gamma, beta' = c * beta,
// so c * BN(x) = BN'(x) in evaluation mode and the fixed network computes what the
// supernet computed. Every other weight and BN statistic is copied by name (a kept edge's
// parameters are renamed from its search-space edge index to its index in the derived
// node); BNs that had no affine parameters in the search cell start at gamma 1, beta 0.
#pragma once

#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "engine/io/checkpoint.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

struct Absorbed {
  spec::Space space;  // the fixed network (network.edge_bn kept)
  ir::Graph graph;
  ir::ParameterStore params;
  std::string genotype;
};

// `coefficients`: per group, the row-major coefficient matrix c (coefficient_values()).
Absorbed absorb(const spec::Space& space, const ir::Graph& graph, const ir::ParameterStore& params,
                const ArchState& arch, const std::vector<std::vector<float>>& coefficients);

// The same from an ista-onestage search checkpoint (weights, supports and coefficients are
// stored there); `space` is the run's space fitted to its data. Throws Error naming the
// checkpoint for another kind of run.
Absorbed absorb_from_checkpoint(const spec::Space& space, const io::Checkpoint& ckpt);

}  // namespace cellgraph::algorithms
