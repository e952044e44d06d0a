// Cell drawings: the DOT text of fixed and search cells (viz/cell_dot.h), `cellgraph draw` on
// specs and run directories, and graphviz rendering when it is built in
// (viz/graphviz/render.h) or its refusal with advice when it is not.
#include <cstdio>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "spec/json_value.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"
#include "tests/support/run_files.h"
#include "tests/support/tiny_space.h"
#include "viz/cell_dot.h"
#include "viz/graphviz/render.h"

using namespace cellgraph;

namespace {
using testing::error_of;
using testing::has;
using testing::TempDir;

const char* const kSource = CELLGRAPH_SOURCE_DIR;
const char* const kTwoNodes = "digraph g { a -> b [label=\"sep_conv_3x3\"]; }";

// Two edges from the same input into one node (parallel arrows), a node from a node, edges
// with a fixed and a trainable scalar coefficient.
const char* const kFixedSpace = R"({
  "format": 1, "name": "fixed",
  "cells": [{
    "name": "cell", "inputs": ["c_k-2", "c_k-1"],
    "nodes": [
      {"name": "a", "edges": [{"from": "c_k-1", "op": "sep_conv_3x3"},
                              {"from": "c_k-1", "op": "max_pool_3x3"}]},
      {"name": "b", "edges": [{"from": "c_k-2", "op": "skip_connect",
                               "coefficient": {"init": 0.9, "trainable": true}},
                              {"from": "a", "op": "dil_conv_3x3", "coefficient": 0.5}]}
    ],
    "output": {"concat": ["a", "b"]}
  }],
  "network": {
    "input": [1, 8, 8], "classes": 3,
    "stem": [{"op": "conv_3x3", "channels": 6}, {"op": "batch_norm"}],
    "body": [{"cell": "cell", "channels": 4}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";

// The DOT statements (lines, trimmed) that draw an arrow.
std::vector<std::string> arrows(const std::string& dot) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < dot.size()) {
    size_t end = dot.find('\n', at);
    if (end == std::string::npos) end = dot.size();
    std::string line = dot.substr(at, end - at);
    line.erase(0, line.find_first_not_of(' '));
    if (has(line, " -> ")) out.push_back(line);
    at = end + 1;
  }
  return out;
}

int count(const std::vector<std::string>& lines, const std::string& text) {
  int n = 0;
  for (const std::string& l : lines) n += has(l, text);
  return n;
}

std::string g3(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}
}  // namespace

TEST_CASE("draw: a fixed cell has its inputs, nodes, output and one labelled arrow per edge") {
  const spec::Space space = spec::parse_string(kFixedSpace, "fixed.json");
  const std::string dot = viz::cells_dot({{&space.cells[0], {}}}, space.name);
  CHECK(dot.rfind("digraph \"fixed\" {\n", 0) == 0);
  CHECK(has(dot, "\"c_k-2\" [label=\"c_k-2\", fillcolor=darkseagreen2];"));
  CHECK(has(dot, "\"c_k-1\" [label=\"c_k-1\", fillcolor=darkseagreen2];"));
  CHECK(has(dot, "\"a\" [label=\"a\", fillcolor=lightblue];"));
  CHECK(has(dot, "\"b\" [label=\"b\", fillcolor=lightblue];"));
  CHECK(has(dot, "\":output\" [label=\"output (concat)\", fillcolor=palegoldenrod];"));
  const std::vector<std::string> a = arrows(dot);
  CHECK(a.size() == 6);  // four edges, two concatenated nodes
  // The two edges c_k-1 -> a stay two arrows.
  CHECK(count(a, "\"c_k-1\" -> \"a\" [label=\"sep_conv_3x3\"];") == 1);
  CHECK(count(a, "\"c_k-1\" -> \"a\" [label=\"max_pool_3x3\"];") == 1);
  CHECK(count(a, "\"c_k-2\" -> \"b\" [label=\"skip_connect \xc3\x97 c (from 0.9)\"];") == 1);
  CHECK(count(a, "\"a\" -> \"b\" [label=\"dil_conv_3x3 \xc3\x97 0.5\"];") == 1);
  CHECK(count(a, "\"a\" -> \":output\"") == 1);
  CHECK(count(a, "\"b\" -> \":output\"") == 1);
}

TEST_CASE("draw: a search cell draws every candidate, weighted by its share of the strongest") {
  const spec::Space space = spec::parse_string(testing::kTinySpace, "tiny.json");
  viz::CellWeights weights;
  // Node a: edge 0 from c_k-2, edge 1 from c_k-1; ops none, skip, sep_conv, max_pool.
  weights.ops["a"] = {{0.1, 0.3, 0.6, 0.1}, {0.25, 0.25, 0.25, 0.25}};
  const std::string dot = viz::cells_dot({{&space.cells[0], weights}}, "tiny");
  const std::vector<std::string> a = arrows(dot);
  // 2 + 3 edges of 4 candidates each, then 2 concatenated nodes.
  CHECK(a.size() == 5 * 4 + 2);
  CHECK(count(a,
              "\"c_k-2\" -> \"a\" [label=\"sep_conv_3x3 0.6\", penwidth=4, "
              "color=\"#1f4e79ff\", fontcolor=\"#1f4e79ff\"]") == 1);
  // 0.3 of 0.6: half the width range (0.5 + 3.5 / 2), alpha 0.15 + 0.85 / 2 = 147/255.
  CHECK(count(a,
              "\"c_k-2\" -> \"a\" [label=\"skip_connect 0.3\", penwidth=2.25, "
              "color=\"#1f4e7993\"") == 1);
  // 0.1 of 0.6: 0.5 + 3.5 / 6, alpha 0.15 + 0.85 / 6 = 74/255.
  CHECK(count(a, "\"c_k-2\" -> \"a\" [label=\"none 0.1\"") == 1);
  CHECK(count(a,
              "label=\"none 0.1\", penwidth=1.08, color=\"#1f4e794a\", "
              "fontcolor=\"#1f4e794a\", style=dashed") == 1);
  // Equal weights: every candidate at full strength.
  CHECK(count(a, "\"c_k-1\" -> \"a\" [label=\"max_pool_3x3 0.25\", penwidth=4,") == 1);
  // Node b has no weights: its candidates are drawn plain.
  CHECK(count(a, "\"a\" -> \"b\" [label=\"sep_conv_3x3\", color=gray40]") == 1);
  CHECK(count(a, "\"a\" -> \"b\" [label=\"none\", color=gray40, style=dashed]") == 1);

  // --top 2: the two strongest of each weighted edge (ties in spec order), all of the rest.
  const std::vector<std::string> top = arrows(viz::cells_dot({{&space.cells[0], weights, 2}}, "t"));
  CHECK(top.size() == 2 + 2 + 3 * 4 + 2);
  CHECK(count(top, "\"c_k-2\" -> \"a\" [label=\"sep_conv_3x3 0.6\"") == 1);
  CHECK(count(top, "\"c_k-2\" -> \"a\" [label=\"skip_connect 0.3\"") == 1);
  CHECK(count(top, "\"c_k-2\" -> \"a\" [label=\"none 0.1\"") == 0);
  CHECK(count(top, "\"c_k-1\" -> \"a\" [label=\"none 0.25\"") == 1);
  CHECK(count(top, "\"c_k-1\" -> \"a\" [label=\"skip_connect 0.25\"") == 1);
  CHECK(count(top, "\"c_k-1\" -> \"a\" [label=\"sep_conv_3x3 0.25\"") == 0);
}

TEST_CASE("draw: DARTS_V2's normal and reduce cells, and both as clusters") {
  const std::string path = std::string(kSource) + "/examples/networks/darts_v2.json";
  const spec::Space space = spec::parse_file(path);
  TempDir dir;
  for (const spec::Cell& cell : space.cells) {
    CAPTURE(cell.name);
    const testing::Result r = testing::run_cli("draw " + path + " --cell " + cell.name, dir);
    REQUIRE(r.status == 0);
    CHECK(has(r.out, "label=\"" + cell.name + "\";"));
    for (const char* node : {"c_k-2", "c_k-1", "n0", "n1", "n2", "n3"})
      CHECK(has(r.out, "\"" + std::string(node) + "\" [label=\"" + node + "\""));
    const std::vector<std::string> a = arrows(r.out);
    CHECK(a.size() == 8 + 4);  // two edges per node, four nodes concatenated
    for (const spec::Node& node : cell.nodes)
      for (const spec::Edge& edge : node.edges)
        CHECK(count(a, "\"" + edge.from + "\" -> \"" + node.name + "\" [label=\"" + edge.ops[0] +
                           "\"]") >= 1);
  }
  // By hand, from the DARTS_V2 genotype: normal n3 <- dil_conv_3x3(n0); reduce n1 <- skip(n0).
  testing::Result r = testing::run_cli("draw " + path + " --cell normal", dir);
  CHECK(has(r.out, "\"n0\" -> \"n3\" [label=\"dil_conv_3x3\"];"));
  r = testing::run_cli("draw " + path + " --cell reduce", dir);
  CHECK(has(r.out, "\"n0\" -> \"n1\" [label=\"skip_connect\"];"));
  // Without --cell: one cluster per cell, node ids prefixed.
  r = testing::run_cli("draw " + path, dir);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "subgraph \"cluster_normal\""));
  CHECK(has(r.out, "subgraph \"cluster_reduce\""));
  CHECK(has(r.out, "\"reduce/n0\" -> \"reduce/n1\" [label=\"skip_connect\"];"));
  CHECK(arrows(r.out).size() == 2 * 12);
  // Errors name the file and what was expected.
  r = testing::run_cli("draw " + path + " --cell other", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, path + ": no cell 'other'; its cells are normal, reduce"));
  r = testing::run_cli("draw " + path + " --format jpg", dir);
  CHECK(has(r.err, "--format: expected dot, svg or png, got 'jpg'"));
}

TEST_CASE("draw: a search run is drawn with its checkpoint's weights, as its metrics say") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = testing::write_tiny_space(dir);
  const std::string run = dir / "run";
  testing::Result r = testing::run_cli(
      "search " + spec + " --out " + run + " --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
          " --subset 64 --batch 8 --epochs 1 --log-every 0 --threads 1 --seed 3",
      dir);
  REQUIRE(r.status == 0);
  r = testing::run_cli("draw " + run + " --out " + (dir / "cell.dot"), dir);
  REQUIRE(r.status == 0);
  CHECK(has(r.err, "wrote " + (dir / "cell.dot") + ": dot of search run " + run + " at step 4"));
  const std::string dot = testing::read_text(dir / "cell.dot");
  // The run ended at an epoch end: the checkpoint's weights are the last line's.
  const std::string metrics = testing::read_text(run + "/metrics.jsonl");
  const spec::JsonValue last = spec::parse_json_string(
      metrics.substr(metrics.rfind('\n', metrics.size() - 2) + 1), "metrics.jsonl");
  const spec::JsonValue& normal = *last.find("arch_weights")->find("normal");
  const std::vector<spec::JsonValue>& columns = normal.find("columns")->items();
  const std::vector<spec::JsonValue>& rows = normal.find("rows")->items();
  const std::vector<std::string> a = arrows(dot);
  CHECK(a.size() == 5 * 4 + 2);
  for (size_t row = 0; row < rows.size(); ++row) {
    // "a/e0<-c_k-2": node a, from c_k-2.
    const std::string label = rows[row].as_string();
    const std::string node = label.substr(0, label.find('/'));
    const std::string from = label.substr(label.find("<-") + 2);
    CAPTURE(label);
    // "from" -> "node" [label="<op> <weight>"]
    std::string arrow = "\"" + from + "\" -> \"";
    arrow += node + "\" [label=\"";
    for (size_t c = 0; c < columns.size(); ++c) {
      const double w = normal.find("values")->items()[row].items()[c].as_double();
      CHECK(count(a, arrow + columns[c].as_string() + " " + g3(w) + "\"") == 1);
    }
  }
  // svg through graphviz, or the refusal with advice.
  r = testing::run_cli("draw " + run + " --out " + (dir / "cell.svg"), dir);
  if (viz::graphviz_available()) {
    REQUIRE(r.status == 0);
    const std::string svg = testing::read_text(dir / "cell.svg");
    CHECK(has(svg, "<svg"));
    CHECK(has(svg, "sep_conv_3x3"));
  } else {
    CHECK(r.status == 1);
    CHECK(has(r.err, "libgraphviz-dev"));
  }
}

TEST_CASE("draw: graphviz renders DOT to an svg document and a png image") {
  if (!viz::graphviz_available()) {
    MESSAGE("skipped: built without graphviz (CELLGRAPH_GRAPHVIZ found no libgvc)");
    const std::string message = error_of([] { viz::render_dot(kTwoNodes, "svg", "cell"); });
    CHECK(has(message, "libgraphviz-dev"));
    CHECK(has(message, "--format dot"));
    return;
  }
  const std::string svg = viz::render_dot(kTwoNodes, "svg", "cell");
  CHECK(has(svg, "<svg"));
  CHECK(has(svg, "</svg>"));
  CHECK(has(svg, "sep_conv_3x3"));
  const std::string png = viz::render_dot(kTwoNodes, "png", "cell");
  REQUIRE(png.size() > 8);
  CHECK(png.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_CASE("draw: graphviz errors name the drawing and quote graphviz") {
  if (!viz::graphviz_available()) {
    MESSAGE("skipped: built without graphviz");
    return;
  }
  const std::string bad = error_of([] { viz::render_dot("digraph { a -> ", "svg", "x.dot"); });
  CHECK(bad.rfind("x.dot: graphviz rejected the DOT text: ", 0) == 0);
  const std::string format =
      error_of([] { viz::render_dot(kTwoNodes, "no-such-format", "x.dot"); });
  CHECK(format.rfind("x.dot: graphviz cannot render 'no-such-format': ", 0) == 0);
}
