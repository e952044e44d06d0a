// Cell drawings as DOT text (graphviz's graph language), written by plain C++ so that
// `cellgraph draw --format dot` needs no graphviz; viz/graphviz/render.h turns the text
// into svg or png.
//
// The picture follows the DARTS paper's cell figures: the cell's inputs on the left
// (green), its nodes (blue), the output (yellow) fed by the nodes it concatenates, left to
// right, and each edge labelled with its op. A fixed cell has one arrow per spec edge, so
// two edges between the same pair of nodes stay two arrows. A search cell draws every
// candidate of an edge as its own arrow; with weights (a run's architecture), each arrow's
// label carries the candidate's weight and its width and opacity grow with the weight
// relative to the edge's strongest candidate, so the ops a derivation would pick stand out.
// An edge's scalar coefficient (spec "coefficient") ends its label: "neg_identity × 0.9".
#pragma once

#include <map>
#include <string>
#include <vector>

#include "spec/space.h"

namespace cellgraph::viz {

// A run's architecture for one cell: per node, per edge (spec order), per op (Edge::ops
// order) the weight the algorithm ranks; and for nodes with path weights (AGD), per edge
// the path weight. Missing nodes or edges are drawn without weights.
struct CellWeights {
  std::map<std::string, std::vector<std::vector<double>>> ops;
  std::map<std::string, std::vector<double>> paths;
};

struct CellDrawing {
  const spec::Cell* cell = nullptr;
  CellWeights weights;
  // > 0: of an edge with weights, only its `top` strongest candidates (ties: spec order).
  int top = 0;
};

// One DOT digraph named `title`. A single cell is the whole graph (labelled with the cell's
// name); several are side-by-side clusters, with node ids prefixed by the cell's name.
std::string cells_dot(const std::vector<CellDrawing>& cells, const std::string& title);

// A DOT double-quoted string with `"` and `\` escaped, newlines as \n.
std::string dot_quoted(const std::string& text);

}  // namespace cellgraph::viz
