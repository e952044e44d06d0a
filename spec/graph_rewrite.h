// What the compile passes that remove nodes share (spec/fold_concat_relu.h,
// spec/fold_conv_relu.h): who reads each value, and the renumbering after a removal.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/ir/graph.h"

namespace cellgraph::spec {

// How many nodes read each value, plus one for each of the graph's outputs.
std::vector<int32_t> reader_counts(const ir::Graph& g);

// Drops the marked nodes and values and renumbers what is left, in order (so the nodes stay
// in execution order). No kept node or record may refer to a dropped value. `pass` names
// the caller in the assertions.
void compact(ir::Graph& g, const std::vector<bool>& drop_node, const std::vector<bool>& drop_value,
             const char* pass);

}  // namespace cellgraph::spec
