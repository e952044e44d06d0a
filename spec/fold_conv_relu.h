// A compile pass over search networks: a ReLU whose one reader is a depthwise conv at
// stride 1 with "same" padding becomes part of that conv (ConvAttrs::relu_input), which
// then reads the ReLU's input; the ReLU node and its output leave the graph.
//
// Why: in DARTS' separable conv a ReLU sits between the first BN and the second depthwise
// conv. Apart, the ReLU writes a whole tensor that the conv then reads, writes it again when
// the backward recomputes it for the conv's weight gradient (relu is recomputed, not kept),
// and its backward reads the conv's data gradient and writes a masked copy. Folded, the
// depthwise loops rectify each plane as they copy it into their padded scratch and mask
// each plane of the data gradient while it is still in L1 (conv_loops.h, DepthwiseFold).
// DARTS step (bench/profile_step, 1 thread): ReLU kernels 0.135 / 0.144 -> 0.040 / 0.038 s,
// the convs' times unchanged. docs/architecture.md ("Folded ReLUs") has the rest.
//
// Only a ReLU with one reader: the first ReLU of every separable and dilated conv is shared
// by the depthwise convs of all the edges leaving a node (spec/builder.h), and folded into
// each of them every reader would read x again for its own mask, where the shared ReLU's
// backward reads it once: a dense DARTS step's conv backward took 0.2 s longer, more than
// the ReLU kernels it saved (0.17 s), and sparse steps gained little more than from single
// readers (bench/README.md). One reader keeps the values and their order: the
// conv's masked data gradient is the ReLU's gradient, bit for bit (the same rectify and
// mask loops, vector_loops.h), and reaches the input's slot where the ReLU's did.
//
// Only in search networks (graphs with candidates), as spec/fold_concat_relu.h, so that a
// fixed network keeps the node-for-node form `export --cell` and the latency table's
// derived networks have; the op still exports (a Relu before the Conv).
#pragma once

#include "engine/ir/graph.h"

namespace cellgraph::spec {

// Folds every such ReLU; returns how many. Node and value ids after the first removed one
// change.
int fold_conv_relu(ir::Graph& graph);

}  // namespace cellgraph::spec
