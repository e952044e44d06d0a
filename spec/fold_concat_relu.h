// A compile pass over search networks: a ReLU whose input is a concat that nothing else
// reads becomes part of that concat (ConcatAttrs::relu), and the ReLU node and the
// concat's unrectified output leave the graph.
//
// Why: a search cell's output is a concat of its nodes, and the only reader of it is the
// one preprocessing ReLU that the next two cells share (spec/compile.cpp,
// "search_preprocess"). Apart, the concat writes the output, and the ReLU reads it and
// writes it again; its backward reads the gradient and the output and writes a gradient the
// concat then copies out in blocks. Folded, the concat rectifies as it copies and its
// backward masks as it copies: one pass over memory less each way per cell.
// docs/architecture.md ("Folded ReLUs") has the measurements.
//
// Only in search networks (graphs with candidates): `export --cell` cuts a fixed network's
// cell out by its labels, and the ReLU belongs to the next cell's preprocessing; a search
// network is never exported (export refuses candidates), and a derived network is compiled
// afresh. Values, gradients and the order of every floating-point operation stay the same
// (the rectifying concat computes max(x, 0) and its mask as relu's kernel does).
#pragma once

#include "engine/ir/graph.h"

namespace cellgraph::spec {

// Folds every such ReLU; returns how many. The folded concat keeps its label and takes the
// ReLU's cells_sharing (the latency table times the ReLU that many times, as a derived
// network runs it). Node and value ids after the first removed one change.
int fold_concat_relu(ir::Graph& graph);

}  // namespace cellgraph::spec
