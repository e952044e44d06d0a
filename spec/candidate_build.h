// Expands a candidate op on one edge into primitive IR nodes (see docs/spec.md for what
// each computes). In a search cell (`search` = true) BNs have no affine parameters and
// pooling is followed by a BN, as in DARTS; in a fixed network BNs are affine.
#pragma once

#include <string>

#include "ops/candidates.h"
#include "spec/builder.h"

namespace cellgraph {

struct CandidateSite {
  int64_t channels = 0;  // C of the cell: input and output channels of the edge
  int stride = 1;        // 2 on edges leaving the inputs of a reduction cell
  bool search = true;
  // spec network.edge_bn (ISTA-NAS one-stage): the op's closing BN is affine and named
  // "<name>.out_bn"; ops without one (identity, pooling, negation) get it.
  bool edge_bn = false;
  std::string name;  // label / parameter prefix, e.g. "cells.2.n1.e0.sep_conv_3x3"
};

// Returns the edge's output value (for skip_connect at stride 1: x itself).
ir::ValueId build_candidate(ir::Builder& b, Candidate op, ir::ValueId x, const CandidateSite& site);

// A factorized reduce of `x` (the one `what` names, at label `name`): throws Error naming
// the builder's context when a side of x is odd, where the even and the odd pixels give
// halves of different sizes that cannot be concatenated. Stride-2 convs and pools take
// any size, so this is the one halving that needs even sides.
void require_even_map(const ir::Builder& b, ir::ValueId x, const std::string& name,
                      const std::string& what);

}  // namespace cellgraph
