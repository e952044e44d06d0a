// spec::Space -> ir::Graph: builds the network the spec describes with one batch-1 shape
// per value, creates its parameters and its architecture-parameter groups. Errors
// (shapes that do not fit, ops that cannot take a stride) name the spec file and the
// JSON pointer of the stage / edge being built.
#pragma once

#include "engine/ir/graph.h"
#include "spec/space.h"

namespace cellgraph::spec {

ir::Graph compile(const Space& space);

}  // namespace cellgraph::spec
