#include "spec/space.h"

namespace cellgraph::spec {

const Cell* Space::find_cell(const std::string& cell_name) const {
  for (const Cell& c : cells)
    if (c.name == cell_name) return &c;
  return nullptr;
}

bool Space::is_fixed() const {
  for (const Cell& c : cells)
    for (const Node& n : c.nodes)
      for (const Edge& e : n.edges)
        if (e.ops.size() != 1) return false;
  return !searches_widths();
}

bool Space::searches_widths() const {
  for (const Stage& stage : network.body)
    if (stage.width_search) return true;
  return false;
}

}  // namespace cellgraph::spec
