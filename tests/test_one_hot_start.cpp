// An edge's `init_one_hot` (the HB initialisation): every relaxation starts that edge's
// coefficients one-hot on the op — softmax at the documented weight ir::kOneHotWeight,
// NASP's box exactly, ISTA-NAS' codes from the one-hot code — and `cellgraph info` prints
// the logit and the softmax weight it gives.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/ista.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/cli.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

// One HB node: o1 (random) and o2 (one-hot identity) from the previous state, o (one-hot
// negative identity) from the one before; the 9 ops of the HB paper's Table 3 (without
// `none` for SparseNAS, whose zero path is A = 0).
std::string hb_space(double init_std, bool edge_bn, bool with_none = true) {
  return std::string(R"({
    "format": 1, "name": "hb_start",
    "op_sets": {"hb": [)") +
         (with_none ? R"("none", )" : "") +
         R"("max_pool_3x3", "avg_pool_3x3", "skip_connect", "neg_identity",
                       "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]},
    "cells": [{"name": "hb", "inputs": ["c_k-2", "c_k-1"],
               "nodes": [{"name": "x0", "keep": 3, "edges": [
                 {"from": "c_k-1", "ops": "hb"},
                 {"from": "c_k-1", "ops": "hb", "init_one_hot": "skip_connect"},
                 {"from": "c_k-2", "ops": "hb", "init_one_hot": "neg_identity"}]}],
               "output": {"node": "x0"}}],
    "network": {"input": [1, 8, 8], "classes": 3, )" +
         (edge_bn ? R"("edge_bn": true, )" : "") + R"(
                "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
                "body": [{"cell": "hb", "channels": 4, "repeat": 2}],
                "head": [{"op": "global_avg_pool"}, {"op": "linear"}]},
    "arch": {"init_std": )" +
         std::to_string(init_std) + "}}";
}

struct OneHotRow {
  int32_t row, column;
};

// The one-hot rows of the space's only group: row 1 on skip_connect, row 2 on neg_identity.
std::vector<OneHotRow> one_hot_rows(const ir::Graph& graph) {
  REQUIRE(graph.arch_groups.size() == 1);
  const ir::ArchGroup& g = graph.arch_groups[0];
  std::vector<OneHotRow> out;
  for (int32_t r = 0; r < g.rows; ++r)
    if (g.one_hot[size_t(r)] >= 0) out.push_back({r, g.one_hot[size_t(r)]});
  REQUIRE(out.size() == 2);
  CHECK(g.columns[size_t(out[0].column)] == "skip_connect");
  CHECK(g.columns[size_t(out[1].column)] == "neg_identity");
  return out;
}

std::vector<float> row_of(const Var& m, int32_t r) {
  const std::vector<float> v = m.value().to_vector();
  const auto cols = m.shape()[1];
  return std::vector<float>(v.begin() + r * cols, v.begin() + (r + 1) * cols);
}

}  // namespace

TEST_CASE("one-hot start: every algorithm starts the row at its op (within 0.01 of one-hot)") {
  // The relaxations differ in how exactly (the cases below); each puts a weight within
  // 1 - kOneHotWeight of 1 on the op and at most that much on the others together.
  for (const Algorithm* algorithm : algorithms::algorithms()) {
    CAPTURE(algorithm->name());
    const spec::Space space = spec::parse_string(
        hb_space(0.0, algorithm->name() == "ista-onestage", algorithm->name() != "sparsenas"),
        "hb.json");
    const ir::Graph graph = spec::compile(space);
    const ArchState arch = prepared_arch_state(*algorithm, graph, space, 5);
    const std::vector<Var> c = algorithm->coefficients(arch);
    for (const OneHotRow& hot : one_hot_rows(graph)) {
      const std::vector<float> row = row_of(c[0], hot.row);
      double others = 0;
      for (size_t k = 0; k < row.size(); ++k)
        if (int32_t(k) != hot.column) others += std::abs(double(row[k]));
      CHECK(std::abs(row[size_t(hot.column)] - 1.0) <= 1.0 - ir::kOneHotWeight + 1e-6);
      CHECK(others <= 1.0 - ir::kOneHotWeight + 1e-6);
    }
  }
}

TEST_CASE("one-hot start: softmax starts at weight 0.99 from a logit margin, no noise") {
  const spec::Space space = spec::parse_string(hb_space(1e-3, false), "hb.json");
  const ir::Graph graph = spec::compile(space);
  const ArchState arch = prepared_arch_state(find_algorithm("darts"), graph, space, 5);
  const std::vector<Var> c = find_algorithm("darts").coefficients(arch);
  const size_t n = graph.arch_groups[0].columns.size();
  REQUIRE(n == 9);
  for (const OneHotRow& hot : one_hot_rows(graph)) {
    const std::vector<float> logits = row_of(arch.logits[0], hot.row);
    const std::vector<float> weights = row_of(c[0], hot.row);
    for (size_t k = 0; k < n; ++k) {
      if (int32_t(k) == hot.column) {
        // ln(0.99 * 8 / 0.01) = ln(792): e^l / (e^l + 8) = 0.99
        CHECK(logits[k] == float(std::log(792.0)));
        CHECK(weights[k] == doctest::Approx(0.99).epsilon(1e-6));
      } else {
        CHECK(logits[k] == 0.0f);  // not the random init: the margin is exact
        CHECK(weights[k] == doctest::Approx(0.01 / 8).epsilon(1e-5));
      }
    }
  }
  // Row 0 (o1) keeps the random init.
  const std::vector<float> random = row_of(arch.logits[0], 0);
  CHECK(std::any_of(random.begin(), random.end(), [](float v) { return v != 0.0f; }));
}

TEST_CASE("one-hot start: NASP's A and its coefficients start exactly one-hot") {
  const spec::Space space = spec::parse_string(hb_space(1e-3, false), "hb.json");
  const ir::Graph graph = spec::compile(space);
  const Algorithm& nasp = find_algorithm("nasp");
  const ArchState arch = prepared_arch_state(nasp, graph, space, 5);
  const std::vector<Var> c = nasp.coefficients(arch);
  for (const OneHotRow& hot : one_hot_rows(graph)) {
    const std::vector<float> a = row_of(arch.logits[0], hot.row), w = row_of(c[0], hot.row);
    for (size_t k = 0; k < a.size(); ++k) {
      CHECK(a[k] == (int32_t(k) == hot.column ? 1.0f : 0.0f));
      CHECK(w[k] == (int32_t(k) == hot.column ? 1.0f : 0.0f));
    }
  }
}

TEST_CASE("one-hot start: SparseNAS' A starts exactly one-hot, the rest of the row at zero") {
  // No softmax to saturate: the row is e_k itself, and its other entries are zero paths.
  const spec::Space space = spec::parse_string(hb_space(1e-3, false, false), "hb.json");
  const ir::Graph graph = spec::compile(space);
  const Algorithm& sparsenas = find_algorithm("sparsenas");
  const ArchState arch = prepared_arch_state(sparsenas, graph, space, 5);
  const std::vector<Var> c = sparsenas.coefficients(arch);
  for (const OneHotRow& hot : one_hot_rows(graph)) {
    const std::vector<float> w = row_of(c[0], hot.row);
    for (size_t k = 0; k < w.size(); ++k) CHECK(w[k] == (int32_t(k) == hot.column ? 1.0f : 0.0f));
  }
  // Row 0 (o1) keeps the random init.
  const std::vector<float> random = row_of(c[0], 0);
  CHECK(std::all_of(random.begin(), random.end(), [](float v) { return v != 0.0f; }));
}

TEST_CASE("one-hot start: ISTA-NAS codes the one-hot entries and warm-starts the LASSO there") {
  // z_0 is 1 at each one-hot row's op and 0 on the rest of that row, and the first LASSO
  // starts from z_0 (from 0 it drifts to another code with the same b: 7 measurements, 24
  // unknowns). The one-hot ops are in the first support with coefficients within 0.01 of 1;
  // with init_std 0 the whole row is: the o1 row's random z_0 leaks into the rest of the
  // node's coefficients through A_S^T (b - A_S z_S).
  for (double init_std : {0.0, 1e-3}) {
    CAPTURE(init_std);
    const spec::Space space = spec::parse_string(hb_space(init_std, false), "hb.json");
    const ir::Graph graph = spec::compile(space);
    const Algorithm& ista = find_algorithm("ista");
    const ArchState arch = prepared_arch_state(ista, graph, space, 5);
    const SparseNode& node = sparse_codes(arch).nodes.at(0);
    const std::vector<Var> c = ista.coefficients(arch);
    double worst = 0;
    for (const OneHotRow& hot : one_hot_rows(graph)) {
      const std::vector<float> w = row_of(c[0], hot.row);
      CHECK(std::abs(w[size_t(hot.column)] - 1.0) <= 1.0 - ir::kOneHotWeight);
      for (size_t k = 0; k < w.size(); ++k)
        worst = std::max(worst, std::abs(double(w[k]) - (int32_t(k) == hot.column ? 1.0 : 0.0)));
      const size_t cols = node.columns.size();
      bool supported = false;
      for (int32_t i : node.support)
        supported |=
            node.rows[size_t(i) / cols] == hot.row && node.columns[size_t(i) % cols] == hot.column;
      CHECK(supported);
    }
    MESSAGE("ISTA-NAS one-hot start, init_std ", init_std, ": largest |c - e_k| ", worst);
    if (init_std == 0) CHECK(worst <= 1.0 - ir::kOneHotWeight);
  }
}

TEST_CASE("one-hot start: cellgraph info prints each row's logit and softmax weight") {
  const testing::TempDir dir("cellgraph_one_hot");
  const std::string spec = dir / "hb.json";
  {
    std::ofstream out(spec);
    out << hb_space(1e-3, false);
  }
  const testing::Result r = testing::run_cli("info " + spec, dir);
  REQUIRE(r.status == 0);
  char expected[160];
  std::snprintf(expected, sizeof expected, "logit %.3f -> softmax weight %.3f", std::log(792.0),
                0.99);
  CHECK(r.out.find("one-hot starts in hb (the row's other logits 0):") != std::string::npos);
  CHECK(r.out.find(std::string("x0/e1<-c_k-1             skip_connect   ") + expected) !=
        std::string::npos);
  CHECK(r.out.find(std::string("x0/e2<-c_k-2             neg_identity   ") + expected) !=
        std::string::npos);
  const testing::Result j = testing::run_cli("info " + spec + " --json", dir);
  REQUIRE(j.status == 0);
  CHECK(j.out.find(R"("op": "neg_identity")") != std::string::npos);
  CHECK(j.out.find(R"("softmax_weight": 0.99)") != std::string::npos);
}

TEST_CASE("one-hot start: a derived network keeps no init_one_hot and reads back") {
  const spec::Space space = spec::parse_string(hb_space(1e-3, false), "hb.json");
  const ir::Graph graph = spec::compile(space);
  const Algorithm& darts = find_algorithm("darts");
  const Derived d = darts.derive(space, graph, prepared_arch_state(darts, graph, space, 5));
  const std::string text = spec::to_json(d.space);
  CHECK(text.find("init_one_hot") == std::string::npos);
  const spec::Space again = spec::parse_string(text, "derived.json");
  CHECK(again.is_fixed());
  // keep 3 of 3: the started ops are what the untrained search derives.
  const spec::Node& x0 = again.cells.at(0).nodes.at(0);
  REQUIRE(x0.edges.size() == 3);
  CHECK(x0.edges[1].ops == std::vector<std::string>{"skip_connect"});
  CHECK(x0.edges[2].ops == std::vector<std::string>{"neg_identity"});
}
