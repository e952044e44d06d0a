// Derivation: the DARTS and NATS-Bench rules, the genotype strings, and that the derived
// spec is a valid fixed network.
#include <doctest/doctest.h>

#include "algorithms/derive.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {
const char* const kDarts = CELLGRAPH_SOURCE_DIR "/examples/spaces/darts_cnn.json";

// Logits of group g: all zero (uniform softmax, exact ties) except the given entries.
void set_logits(ArchState& arch, size_t g, const std::vector<std::tuple<int, int, float>>& at) {
  Tensor& t = arch.logits[g].value();
  t.fill(0.0f);
  for (auto [row, col, v] : at) t.data()[row * t.dim(1) + col] = v;
}
}  // namespace

TEST_CASE("derive: DARTS keeps the top-2 edges by best non-none weight, ties to the lower index") {
  const spec::Space space = spec::parse_file(kDarts);
  const ir::Graph graph = spec::compile(space);
  ArchState arch = initial_arch_state(graph, 1e-3, 1);
  // Columns: 0 none, 1 max_pool, 2 avg_pool, 3 skip, 4 sep3, 5 sep5, 6 dil3, 7 dil5.
  // Rows: n0 <- 0, 1 | n1 <- 2, 3, 4 | n2 <- 5..8 | n3 <- 9..13.
  set_logits(arch, 0,
             {{0, 0, 5.0f},    // n0/e0: none dominates but is never chosen
              {0, 4, 2.0f},    //        -> sep_conv_3x3
              {1, 3, 1.0f},    // n0/e1 -> skip_connect
              {2, 1, 3.0f},    // n1/e0 -> max_pool_3x3 (strong)
              {4, 7, 2.0f}});  // n1/e2 -> dil_conv_5x5; n1/e1 is uniform: dropped
  set_logits(arch, 1, {});     // reduce: all ties
  const Derived d = derive(space, graph, arch);
  const std::string normal =
      "normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('max_pool_3x3', 0), "
      "('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
      "('max_pool_3x3', 1)], normal_concat=[2, 3, 4, 5]";
  const std::string reduce =
      "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
      "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
      "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5]";
  CHECK(d.genotype == "Genotype(" + normal + ", " + reduce + ")");
  CHECK(d.space.is_fixed());
  for (const spec::Cell& c : d.space.cells)
    for (const spec::Node& n : c.nodes) CHECK(n.edges.size() == 2);
}

TEST_CASE("derive: the derived spec is a fixed network that writes, parses and compiles") {
  const spec::Space space = spec::parse_file(kDarts);
  const ir::Graph graph = spec::compile(space);
  const ArchState arch = initial_arch_state(graph, 1e-3, 7);
  const Derived d = derive(space, graph, arch);
  const spec::Space back = spec::parse_string(spec::to_json(d.space), "derived.json");
  CHECK(back.is_fixed());
  CHECK(genotype_string(back) == d.genotype);
  const ir::Graph fixed = spec::compile(back);
  fixed.verify();
  CHECK(fixed.candidates.empty());
  CHECK(fixed.arch_groups.empty());
  CHECK(fixed.weight_count() > 0);
}

TEST_CASE("derive: without keep every edge stays with its arg-max op, none included") {
  const char* nats = R"({
    "format": 1, "name": "nats_cell",
    "op_sets": {"tss": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]},
    "cells": [{
      "name": "tss", "inputs": ["in"], "preprocess": "none",
      "nodes": [
        {"name": "n1", "from": ["in"], "ops": "tss"},
        {"name": "n2", "from": ["in", "n1"], "ops": "tss"},
        {"name": "n3", "from": ["in", "n1", "n2"], "ops": "tss"}
      ],
      "output": {"node": "n3"}
    }],
    "network": {
      "input": [3, 8, 8], "classes": 10,
      "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
      "body": [{"cell": "tss", "channels": 4, "repeat": 2}],
      "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
    }
  })";
  const spec::Space space = spec::parse_string(nats, "nats.json");
  const ir::Graph graph = spec::compile(space);
  ArchState arch = initial_arch_state(graph, 1e-3, 1);
  // Rows: n1<-in (0) | n2<-in (1), n2<-n1 (2) | n3<-in (3), n3<-n1 (4), n3<-n2 (5).
  set_logits(arch, 0,
             {{0, 3, 1.0f}, {1, 0, 2.0f}, {2, 1, 1.0f}, {3, 4, 1.0f}, {4, 0, 1.0f}, {5, 2, 1.0f}});
  const Derived d = derive(space, graph, arch);
  CHECK(d.genotype ==
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|");
}

// Two op sets in one cell type make two architecture groups; each edge reads its row of its
// own group. (Numbering the rows per cell instead of per group once read past the second
// group's matrix and derived a different cell on every run.)
TEST_CASE("derive: a cell mixing two op sets reads each edge's row of its own group") {
  const char* two_sets = R"({
    "format": 1, "name": "two_sets",
    "op_sets": {"wide": ["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"],
                "narrow": ["skip_connect", "sep_conv_3x3"]},
    "cells": [{
      "name": "c", "inputs": ["a", "b"],
      "nodes": [
        {"name": "n1", "edges": [{"from": "a", "ops": "wide"}, {"from": "b", "ops": "wide"},
                                 {"from": "b", "ops": "narrow"}], "keep": 3},
        {"name": "n2", "edges": [{"from": "n1", "ops": "narrow"}, {"from": "a", "ops": "wide"},
                                 {"from": "b", "ops": "narrow"}], "keep": 2}
      ],
      "output": {"concat": ["n1", "n2"]}
    }],
    "network": {
      "input": [1, 8, 8], "classes": 10,
      "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
      "body": [{"cell": "c", "channels": 4, "repeat": 2}],
      "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
    }
  })";
  const spec::Space space = spec::parse_string(two_sets, "two_sets.json");
  const ir::Graph graph = spec::compile(space);
  graph.verify();  // every candidate's row lies inside its group
  REQUIRE(graph.arch_groups.size() == 2);
  REQUIRE(graph.arch_groups[0].rows == 3);  // wide: n1/e0, n1/e1, n2/e1
  REQUIRE(graph.arch_groups[1].rows == 3);  // narrow: n1/e2, n2/e0, n2/e2
  for (const ir::Candidate& c : graph.candidates) {
    const ir::ArchGroup& g = graph.arch_group(c.arch);
    CHECK(c.row < g.rows);
    CHECK(g.columns[size_t(c.column)] == c.label.substr(c.label.rfind('.') + 1));
  }
  ArchState arch = initial_arch_state(graph, 1e-3, 3);
  // wide columns: 0 none, 1 skip, 2 sep3, 3 max_pool; narrow: 0 skip, 1 sep3.
  set_logits(arch, 0, {{0, 3, 2.0f}, {1, 2, 1.0f}, {2, 1, 0.5f}});
  set_logits(arch, 1, {{0, 1, 3.0f}, {1, 0, 4.0f}, {2, 1, 0.1f}});
  const Derived d = derive(space, graph, arch);
  // n1 keeps three edges, so the genotype lists the edges per node.
  CHECK(d.genotype ==
        "Genotype(c=[[('max_pool_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1)], "
        "[('skip_connect', 2), ('sep_conv_3x3', 1)]], c_concat=[2, 3])");
  CHECK(d.genotype == derive(space, graph, arch).genotype);
}
