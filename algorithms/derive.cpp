#include "algorithms/derive.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "algorithms/algorithm.h"
#include "engine/error.h"

namespace cellgraph::algorithms {

namespace {
struct EdgeChoice {
  double strength = 0;  // for ranking edges
  std::string op;       // the op it keeps
};

const ir::ArchGroup* find_group(const ir::Graph& g, const std::string& name, size_t* index) {
  for (size_t i = 0; i < g.arch_groups.size(); ++i)
    if (g.arch_groups[i].name == name) {
      *index = i;
      return &g.arch_groups[i];
    }
  return nullptr;
}

// Chooses the op of one edge and its strength, from the softmax weights of its row.
EdgeChoice choose(const spec::Edge& edge, const std::vector<float>& w, bool exclude_none) {
  EdgeChoice c;
  if (edge.ops.size() == 1) return {1.0, edge.ops[0]};
  int best = -1;
  for (size_t k = 0; k < edge.ops.size(); ++k) {
    if (exclude_none && edge.ops[k] == "none") continue;
    if (best < 0 || w[k] > w[size_t(best)]) best = int(k);  // strict: ties keep the lower index
  }
  if (best < 0) return {0.0, "none"};  // an edge whose only candidate is none
  return {double(w[size_t(best)]), edge.ops[size_t(best)]};
}

void derive_node(spec::Node& node, const spec::Cell& cell, const ir::Graph& g,
                 const std::vector<std::vector<float>>& weights) {
  const size_t degree = node.edges.size();
  const bool selecting = node.keep > 0;  // DARTS rule; else every edge, none allowed
  const size_t keep = selecting ? std::min(size_t(node.keep), degree) : degree;
  std::vector<double> path(degree, 1.0);
  if (node.path_weights && degree > 1) {
    size_t gi = 0;
    if (find_group(g, cell.name + "." + node.name + ".paths", &gi))
      for (size_t e = 0; e < degree; ++e) path[e] = weights[gi][e];
  }
  std::vector<EdgeChoice> choices;
  for (size_t e = 0; e < degree; ++e) {
    const spec::Edge& edge = node.edges[e];
    std::vector<float> w;
    if (edge.ops.size() > 1) {
      const ir::MixedEdge* m = find_mixed_edge(g, cell.name, node.name, int32_t(e));
      CG_ASSERT(m != nullptr, "no architecture row for ", cell.name, "/", node.name, "/e", e);
      const size_t cols = g.arch_group(m->arch).columns.size();
      const std::vector<float>& all = weights[m->arch.index()];
      w.assign(all.begin() + long(size_t(m->row) * cols),
               all.begin() + long(size_t(m->row + 1) * cols));
    }
    EdgeChoice c = choose(edge, w, selecting);
    c.strength *= path[e];
    choices.push_back(c);
  }
  std::vector<size_t> order(degree);
  for (size_t e = 0; e < degree; ++e) order[e] = e;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return choices[a].strength > choices[b].strength; });
  order.resize(keep);
  std::sort(order.begin(), order.end());  // kept edges stay in their spec order
  std::vector<spec::Edge> kept;
  for (size_t e : order) {
    spec::Edge edge = node.edges[e];
    edge.ops = {choices[e].op};
    edge.op_set.clear();
    edge.init.clear();
    kept.push_back(std::move(edge));
  }
  node.edges = std::move(kept);
  node.path_weights = false;
}

bool has_mixed_edge(const spec::Cell& cell) {
  for (const spec::Node& n : cell.nodes)
    for (const spec::Edge& e : n.edges)
      if (e.ops.size() > 1) return true;
  return false;
}
}  // namespace

const ir::MixedEdge* find_mixed_edge(const ir::Graph& graph, const std::string& cell,
                                     const std::string& node, int32_t edge) {
  for (const ir::MixedEdge& m : graph.mixed_edges)
    if (m.cell == cell && m.node == node && m.edge == edge) return &m;
  return nullptr;
}

Derived derive_per_node(const spec::Space& search_space, const NodeRule& node_rule) {
  if (!search_space.arch.share_by_cell)
    throw error(search_space.file,
                ":/arch/share: derivation needs architecture parameters shared "
                "by cell type (\"share\": \"cell_type\"); per-instance cells cannot be written "
                "back as one cell definition");
  Derived d{search_space, ""};
  d.space.name = search_space.name + "-derived";
  for (spec::Cell& cell : d.space.cells) {
    if (!has_mixed_edge(cell)) continue;
    for (spec::Node& node : cell.nodes) {
      node_rule(node, cell);
      for (spec::Edge& edge : node.edges)  // a fixed edge has no architecture weights to start
        if (edge.ops.size() == 1) edge.init_one_hot.clear();
    }
  }
  d.genotype = genotype_string(d.space);
  return d;
}

Derived derive_by_ranking(const spec::Space& search_space, const ir::Graph& graph,
                          const std::vector<std::vector<float>>& weights) {
  for (size_t g = 0; g < weights.size(); ++g)
    for (float w : weights[g])
      if (!std::isfinite(w))
        throw error("architecture weights '", graph.arch_groups[g].name,
                    "' hold inf or NaN (the search diverged); refusing to derive from them");
  return derive_per_node(search_space, [&](spec::Node& node, const spec::Cell& cell) {
    derive_node(node, cell, graph, weights);
  });
}

Derived derive(const spec::Space& search_space, const ir::Graph& graph, const ArchState& arch) {
  if (arch.algorithm != nullptr) return arch.algorithm->derive(search_space, graph, arch);
  return derive_by_ranking(search_space, graph, coefficient_values(arch));
}

std::string genotype_string(const spec::Space& fixed) {
  std::ostringstream darts, nats;
  bool first_darts = true;
  for (const spec::Cell& cell : fixed.cells) {
    // State indices: inputs first (0, 1), then nodes in order.
    auto index_of = [&](const std::string& name) {
      for (size_t i = 0; i < cell.inputs.size(); ++i)
        if (cell.inputs[i] == name) return int(i);
      for (size_t i = 0; i < cell.nodes.size(); ++i)
        if (cell.nodes[i].name == name) return int(cell.inputs.size() + i);
      return -1;
    };
    if (cell.kind == spec::CellKind::recurrent) {
      // DARTS' recurrent genotype: (op, predecessor) per node, state 0 the cell's s0; one
      // list per node when a node kept several edges (SparseNAS' mixed paths).
      bool single = true;
      for (const spec::Node& node : cell.nodes) single = single && node.edges.size() == 1;
      darts << (first_darts ? "" : ", ") << "recurrent=[";
      for (size_t n = 0; n < cell.nodes.size(); ++n) {
        darts << (n ? ", " : "") << (single ? "" : "[");
        for (size_t k = 0; k < cell.nodes[n].edges.size(); ++k) {
          const spec::Edge& e = cell.nodes[n].edges[k];
          darts << (k ? ", " : "") << "('" << e.ops[0] << "', " << index_of(e.from) << ")";
        }
        darts << (single ? "" : "]");
      }
      darts << "], concat=[";
      for (size_t i = 0; i < cell.output.concat.size(); ++i)
        darts << (i ? ", " : "") << index_of(cell.output.concat[i]);
      darts << "]";
      first_darts = false;
    } else if (cell.inputs.size() == 2) {
      // DARTS' flat list when every node has two edges; otherwise (SparseNAS' mixed paths)
      // one list per node, so the reader knows how many edges each node kept.
      bool pairs = true;
      for (const spec::Node& node : cell.nodes) pairs = pairs && node.edges.size() == 2;
      darts << (first_darts ? "" : ", ") << cell.name << "=[";
      bool first = true;
      for (size_t n = 0; n < cell.nodes.size(); ++n) {
        if (!pairs) darts << (n ? ", " : "") << "[";
        if (!pairs) first = true;
        for (const spec::Edge& e : cell.nodes[n].edges) {
          darts << (first ? "" : ", ") << "('" << e.ops[0] << "', " << index_of(e.from) << ")";
          first = false;
        }
        if (!pairs) darts << "]";
      }
      darts << "], " << cell.name << "_concat=[";
      for (size_t i = 0; i < cell.output.concat.size(); ++i)
        darts << (i ? ", " : "") << index_of(cell.output.concat[i]);
      darts << "]";
      first_darts = false;
    } else {
      if (nats.tellp() > 0) nats << "; ";
      if (fixed.cells.size() > 1) nats << cell.name << ": ";
      for (size_t n = 0; n < cell.nodes.size(); ++n) {
        nats << (n ? "+" : "") << "|";
        for (const spec::Edge& e : cell.nodes[n].edges)
          nats << e.ops[0] << "~" << index_of(e.from) << "|";
      }
    }
  }
  std::string out = first_darts ? "" : "Genotype(" + darts.str() + ")";
  if (nats.tellp() > 0) out += (out.empty() ? "" : "; ") + nats.str();
  return out;
}

}  // namespace cellgraph::algorithms
