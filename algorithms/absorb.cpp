#include "algorithms/absorb.h"

#include <map>
#include <sstream>

#include "algorithms/derive.h"
#include "algorithms/ista.h"
#include "engine/backends/vector_ops.h"
#include "engine/error.h"
#include "spec/compile.h"

namespace cellgraph::algorithms {

namespace {
// Where a derived edge's parameters come from.
struct EdgeSource {
  int32_t edge = 0;    // the search-space edge index
  float scale = 1.0f;  // the coefficient its closing BN absorbs
};

std::vector<std::string> split(const std::string& name) {
  std::vector<std::string> parts;
  std::stringstream in(name);
  std::string part;
  while (std::getline(in, part, '.')) parts.push_back(part);
  return parts;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Per (cell type, node, derived edge index): its source, in derive()'s order (spec edges in
// order; a mixed edge contributes its supported ops in column order).
std::map<std::string, EdgeSource> edge_sources(const spec::Space& space, const ir::Graph& graph,
                                               const ArchState& arch,
                                               const std::vector<std::vector<float>>& coef) {
  std::map<std::string, EdgeSource> out;
  for (const spec::Cell& cell : space.cells)
    for (const spec::Node& node : cell.nodes) {
      const SparseNode* sparse = nullptr;
      for (const SparseNode& n : sparse_codes(arch).nodes)
        if (n.label == cell.name + "/" + node.name) sparse = &n;
      int32_t k = 0;
      for (size_t e = 0; e < node.edges.size(); ++e) {
        const spec::Edge& edge = node.edges[e];
        if (edge.ops.size() == 1 || sparse == nullptr) {
          out[cell.name + "/" + node.name + "/" + std::to_string(k++) + "/" + edge.ops[0]] =
              EdgeSource{int32_t(e), 1.0f};
          continue;
        }
        const ir::MixedEdge* m = nullptr;
        for (const ir::MixedEdge& x : graph.mixed_edges)
          if (x.cell == cell.name && x.node == node.name && x.edge == int32_t(e)) m = &x;
        CG_ASSERT(m != nullptr, "no architecture row for ", cell.name, "/", node.name, "/e", e);
        const ir::ArchGroup& group = graph.arch_group(m->arch);
        const size_t cols = group.columns.size(), kk = sparse->columns.size();
        for (int32_t i : sparse->support) {
          if (sparse->rows[size_t(i) / kk] != m->row) continue;
          const size_t col = size_t(sparse->columns[size_t(i) % kk]);
          out[cell.name + "/" + node.name + "/" + std::to_string(k++) + "/" + group.columns[col]] =
              EdgeSource{int32_t(e), coef[m->arch.index()][size_t(m->row) * cols + col]};
        }
      }
    }
  return out;
}
}  // namespace

Absorbed absorb(const spec::Space& space, const ir::Graph& graph, const ir::ParameterStore& params,
                const ArchState& arch, const std::vector<std::vector<float>>& coefficients) {
  sparse_codes(arch);  // asserts the state has sparse codes
  Derived derived = derive(space, graph, arch);
  ir::Graph fixed = spec::compile(derived.space);
  ir::ParameterStore fixed_params(fixed, 0);
  const std::map<std::string, EdgeSource> sources = edge_sources(space, graph, arch, coefficients);
  std::map<int32_t, std::string> cell_of_instance;
  for (const ir::MixedEdge& m : graph.mixed_edges) cell_of_instance[m.instance] = m.cell;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < graph.params.size(); ++i) index[graph.params[i].name] = i;

  for (size_t i = 0; i < fixed.params.size(); ++i) {
    const std::string& name = fixed.params[i].name;
    std::string source = name;
    float scale = 1.0f;
    // cells.<instance>.<node>.e<k>.<op>.<rest>
    std::vector<std::string> parts = split(name);
    if (parts.size() > 5 && parts[0] == "cells" && parts[3].size() > 1 && parts[3][0] == 'e') {
      const auto cell = cell_of_instance.find(std::stoi(parts[1]));
      if (cell != cell_of_instance.end()) {
        const auto it =
            sources.find(cell->second + "/" + parts[2] + "/" + parts[3].substr(1) + "/" + parts[4]);
        CG_ASSERT(it != sources.end(), "no source for derived parameter ", name);
        parts[3] = "e" + std::to_string(it->second.edge);
        source.clear();
        for (const std::string& p : parts) source += (source.empty() ? "" : ".") + p;
        if (ends_with(name, ".out_bn.gamma") || ends_with(name, ".out_bn.beta"))
          scale = it->second.scale;
      }
    }
    const auto from = index.find(source);
    if (from == index.end()) {
      // A BN without affine parameters in the search cell: gamma 1, beta 0 (the init).
      CG_ASSERT(ends_with(name, ".gamma") || ends_with(name, ".beta"), "derived parameter ", name,
                " has no counterpart ", source, " in the supernet");
      continue;
    }
    Var target = fixed_params.all()[i];  // shares the store's tensor
    Tensor& dst = target.value();
    dst.copy_from(params.all()[from->second].value());
    if (scale != 1.0f) vec::scale(dst, scale);
  }
  return Absorbed{std::move(derived.space), std::move(fixed), std::move(fixed_params),
                  derived.genotype};
}

Absorbed absorb_from_checkpoint(const spec::Space& space, const io::Checkpoint& ckpt) {
  const std::string& src = ckpt.source();
  if (ckpt.meta("kind") != "search" || ckpt.meta("algorithm") != "ista-onestage")
    throw error(src,
                ": not an ista-onestage search checkpoint; only a one-stage search leaves "
                "its network trained");
  const ir::Graph graph = spec::compile(space);
  ir::ParameterStore params(graph, 0);
  for (size_t i = 0; i < graph.params.size(); ++i) {
    Var v = params.all()[i];
    v.value().copy_from(ckpt.tensor("param/" + graph.params[i].name, v.shape()));
  }
  const Algorithm& one_stage = find_algorithm("ista-onestage");
  ArchState arch = one_stage.initial_state(graph, space, one_stage.default_hyperparameters(), 0);
  one_stage.restore(graph, arch, ckpt, false);
  std::vector<std::vector<float>> coefficients;
  for (size_t g = 0; g < graph.arch_groups.size(); ++g)
    coefficients.push_back(
        ckpt.tensor("sparse/coefficients/" + graph.arch_groups[g].name, arch.logits[g].shape())
            .to_vector());
  return absorb(space, graph, params, arch, coefficients);
}

}  // namespace cellgraph::algorithms
