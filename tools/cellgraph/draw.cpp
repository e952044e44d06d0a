// cellgraph draw SPEC_OR_RUN [--cell NAME] [--format dot|svg|png] [--out FILE]: a picture of
// a cell. A fixed network (a spec, a derived.json, a train run) gives DARTS-style figures;
// a search space gives each edge's candidates, and a search run's latest checkpoint adds
// the weight the algorithm ranks each candidate by. DOT text comes from viz/cell_dot.h;
// svg and png from graphviz (viz/graphviz/render.h), when the build has it.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "algorithms/arch_state.h"
#include "algorithms/search_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"
#include "viz/cell_dot.h"
#include "viz/graphviz/render.h"

namespace cellgraph::tools {

namespace {

namespace fs = std::filesystem;

struct Source {
  spec::Space space;
  std::map<std::string, viz::CellWeights> weights;  // by cell type
  std::string what;                                 // for the note on stderr
};

const spec::Edge& spec_edge(const spec::Space& space, const ir::MixedEdge& m) {
  const spec::Cell* cell = space.find_cell(m.cell);
  CG_ASSERT(cell != nullptr, "mixed edge of unknown cell ", m.cell);
  for (const spec::Node& node : cell->nodes)
    if (node.name == m.node) return node.edges.at(size_t(m.edge));
  CG_ASSERT(false, "mixed edge of unknown node ", m.cell, "/", m.node);
  return cell->nodes.front().edges.front();
}

// Per cell type, the weights of the checkpoint's architecture: each mixed edge's row of its
// group (the groups are shared by a cell type's instances, so the first instance says all),
// and each path-weighted node's row of its paths group.
std::map<std::string, viz::CellWeights> checkpoint_weights(const spec::Space& space,
                                                           const io::Checkpoint& ckpt) {
  const ir::Graph graph = spec::compile(space);
  const algorithms::ArchState arch =
      algorithms::arch_state_from_checkpoint(space, graph, ckpt, "draw");
  const std::vector<std::vector<float>> values = algorithms::coefficient_values(arch);
  std::map<std::string, viz::CellWeights> out;
  for (const ir::MixedEdge& m : graph.mixed_edges) {
    const ir::ArchGroup& group = graph.arch_groups[m.arch.index()];
    std::vector<std::vector<double>>& edges = out[m.cell].ops[m.node];
    if (edges.size() <= size_t(m.edge)) edges.resize(size_t(m.edge) + 1);
    if (!edges[size_t(m.edge)].empty()) continue;  // a later instance of the same cell type
    // In the spec edge's op order: the group's columns are its cell type's op names.
    const spec::Edge& edge = spec_edge(space, m);
    const size_t cols = group.columns.size();
    for (const std::string& op : edge.ops) {
      const auto column = std::find(group.columns.begin(), group.columns.end(), op);
      CG_ASSERT(column != group.columns.end(), "op ", op, " is no column of group ", group.name);
      edges[size_t(m.edge)].push_back(
          values[m.arch.index()][size_t(m.row) * cols + size_t(column - group.columns.begin())]);
    }
  }
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    if (group.kind != ir::ArchGroup::Kind::edge_paths) continue;
    const size_t cols = group.columns.size();
    for (size_t r = 0; r < size_t(group.rows); ++r) {
      std::vector<double>& paths = out[group.cell].paths[group.row_labels[r]];
      if (!paths.empty()) continue;
      for (size_t c = 0; c < cols; ++c) paths.push_back(values[g][r * cols + c]);
    }
  }
  return out;
}

Source load(const std::string& path) {
  if (!fs::is_directory(path)) {
    Source s{spec::parse_file(path), {}, ""};
    s.what = s.space.is_fixed() ? "fixed network " + path
                                : "search space " + path + " (no weights: draw a search run)";
    return s;
  }
  const ConfigReader config(path);
  spec::Space space = config.space();
  algorithms::fit_space_to_data(space, shape_from_config(config));
  const std::string command = config.string("command");
  if (command != "search" || space.is_fixed())
    return Source{std::move(space), {}, "the network of " + command + " run " + path};
  const std::string ckpt_path = checkpoint_path(path);
  if (!fs::exists(ckpt_path))
    return Source{std::move(space),
                  {},
                  "search run " + path + " (no checkpoint yet: candidates without weights)"};
  const io::Checkpoint ckpt = io::load_checkpoint(ckpt_path);
  Source s{std::move(space), {}, "search run " + path + " at step " + ckpt.meta("step")};
  s.weights = checkpoint_weights(s.space, ckpt);
  return s;
}

// --format, or the --out file's extension, or dot.
std::string format_of(const Args& args) {
  std::string format = args.get("format");
  if (format.empty() && args.has("out")) {
    const std::string ext = fs::path(args.get("out")).extension().string();
    if (ext == ".svg" || ext == ".png" || ext == ".dot") format = ext.substr(1);
  }
  if (format.empty()) format = "dot";
  if (format != "dot" && format != "svg" && format != "png")
    throw error("--format: expected dot, svg or png, got '", format, "'");
  return format;
}

int run_draw(const Args& args) {
  const std::string format = format_of(args);
  const std::string& path = args.positional(0);
  const int top = int(args.get_int("top", 0, 0, 1 << 20));
  Source source = load(path);
  std::vector<viz::CellDrawing> drawings;
  if (args.has("cell")) {
    const spec::Cell* cell = source.space.find_cell(args.get("cell"));
    if (cell == nullptr) {
      std::string names;
      for (const spec::Cell& c : source.space.cells) names += (names.empty() ? "" : ", ") + c.name;
      throw error(path, ": no cell '", args.get("cell"), "'; its cells are ", names);
    }
    drawings.push_back({cell, source.weights[cell->name], top});
  } else {
    for (const spec::Cell& cell : source.space.cells)
      drawings.push_back({&cell, source.weights[cell.name], top});
  }
  if (drawings.empty()) throw error(path, ": the network has no cells to draw");
  const std::string title = source.space.name.empty() ? "cells" : source.space.name;
  const std::string dot = viz::cells_dot(drawings, title);
  const std::string out = args.get("out", "-");
  const std::string bytes = format == "dot" ? dot : viz::render_dot(dot, format, path);
  if (out == "-") {
    std::cout << bytes;
    std::cout.flush();
  } else {
    io::write_file_atomic(out, bytes);
    std::cerr << "wrote " << out << ": " << format << " of " << source.what << "\n";
  }
  return 0;
}

}  // namespace

const Command& draw_command() {
  static const Command kCommand{
      .name = "draw",
      .summary = "draw a cell: a fixed network's, or a search's candidates and their weights",
      .positionals = {"SPEC_OR_RUN"},
      .flags = {{"cell", "NAME", "draw only this cell type", "every cell"},
                {"format", "F", "dot, svg or png (svg and png need a build with graphviz)",
                 "from --out's extension, else dot"},
                {"top", "K",
                 "search runs: only each edge's K strongest candidates (0: every candidate)", "0"},
                {"out", "FILE", "write here (atomically); - is stdout", "-"}},
      .details =
          "SPEC_OR_RUN is a spec (a fixed network such as a derived.json, or a search "
          "space), or a run directory: a search run is drawn with the weights of its latest "
          "checkpoint (each candidate's arrow labelled with the weight its algorithm ranks it "
          "by, wider and darker the closer it is to the edge's strongest), a train run as its "
          "fixed network. Fixed cells are drawn as the DARTS paper's figures: inputs, nodes "
          "and the output, each edge labelled with its op.",
      .run = run_draw};
  return kCommand;
}

}  // namespace cellgraph::tools
