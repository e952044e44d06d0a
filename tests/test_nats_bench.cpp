// NATS-Bench lookup: CPython's shuffle reproduced, every row of the shipped table (index
// both ways, accuracies), arch-string errors, NATS cells recognised in specs (the shipped
// genotypes, derived cells with and without their none edges), and the skip ratio.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/cpython_random.h"
#include "algorithms/derive.h"
#include "algorithms/nats_bench.h"
#include "engine/error.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

namespace fs = std::filesystem;

const char* const kSource = CELLGRAPH_SOURCE_DIR;

struct TableRow {
  std::string index, arch, cifar10, cifar100, imagenet;
};

// data/nats_bench_tss.csv as text fields; its '#' lines go to `comments`.
std::vector<TableRow> read_table(std::string* comments = nullptr) {
  std::ifstream in(fs::path(kSource) / "data/nats_bench_tss.csv");
  REQUIRE(in.good());
  std::vector<TableRow> rows;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (line.rfind('#', 0) == 0) {
      if (comments != nullptr) *comments += line + "\n";
      continue;
    }
    if (header) {
      CHECK(line == "index,arch,cifar10,cifar100,imagenet16_120");
      header = false;
      continue;
    }
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string field; std::getline(fields, field, ',');) f.push_back(field);
    REQUIRE(f.size() == 5);
    rows.push_back({f[0], f[1], f[2], f[3], f[4]});
  }
  return rows;
}

std::string error_of(const std::string& arch) {
  try {
    parse_nats_arch(arch);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A NATS-Bench space at toy size (8x8 input, C=4, two cells) with the given nodes (the
// content of the cell's "nodes" array).
std::string nats_text(const std::string& nodes) {
  return R"({
  "format": 1, "name": "nats_toy",
  "op_sets": {"nats": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]},
  "cells": [{"name": "tss", "inputs": ["in"], "preprocess": "none", "nodes": [)" +
         nodes + R"(], "output": {"node": "n3"}}],
  "network": {
    "input": [3, 8, 8], "classes": 10,
    "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
    "body": [{"cell": "tss", "channels": 4, "repeat": 2}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";
}

spec::Space nats_space(const std::string& nodes) {
  return spec::parse_string(nats_text(nodes), "nats.json");
}

// The search space: every edge one of the five NATS ops.
constexpr const char* kNatsSearchNodes = R"(
  {"name": "n1", "from": ["in"], "ops": "nats"},
  {"name": "n2", "from": ["in", "n1"], "ops": "nats"},
  {"name": "n3", "from": ["in", "n1", "n2"], "ops": "nats"})";

}  // namespace

TEST_CASE("nats: CPython's Mersenne Twister, _randbelow and shuffle, bit for bit") {
  // Reference values from CPython 3.11:
  //   random.seed(88); [random.getrandbits(32) for _ in range(3)]
  CPythonRandom r88(88);
  CHECK(r88.next32() == 1707201716u);
  CHECK(r88.next32() == 4182107318u);
  CHECK(r88.getrandbits(32) == 813946014u);
  //   random.seed(0): a zero seed is the key [0]
  CPythonRandom r0(0);
  CHECK(r0.next32() == 3626764237u);
  CHECK(r0.next32() == 1654615998u);
  //   random.seed(2**40 + 5): two key words, the low one first
  CPythonRandom big((uint64_t(1) << 40) + 5);
  CHECK(big.next32() == 2166296868u);
  CHECK(big.next32() == 2220160828u);
  //   r = random.Random(88); [r._randbelow(10) for _ in range(5)], r.getrandbits(7)
  CPythonRandom below(88);
  std::vector<uint32_t> draws;
  draws.reserve(5);
  for (int i = 0; i < 5; ++i) draws.push_back(below.randbelow(10));
  CHECK(draws == std::vector<uint32_t>{6, 3, 5, 2, 0});
  CHECK(below.getrandbits(7) == 67u);
  //   x = list(range(10)); random.seed(7); random.shuffle(x)
  std::vector<int> x{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  CPythonRandom r7(7);
  r7.shuffle(x);
  CHECK(x == std::vector<int>{8, 3, 1, 4, 7, 0, 9, 6, 2, 5});
}

TEST_CASE("nats: every row of the shipped table: index <-> arch string, and its accuracies") {
  std::string comments;
  const std::vector<TableRow> rows = read_table(&comments);
  REQUIRE(rows.size() == size_t(kNatsCellCount));
  // The MIT notice NATS-Bench's licence asks for travels with the figures.
  CHECK(has(comments, "MIT License"));
  CHECK(has(comments, "Copyright (c) since 2020 Xuanyi Dong"));
  CHECK(has(comments, "The above copyright notice and this permission notice shall be included"));
  int64_t bad_index = 0, bad_arch = 0, bad_back = 0, bad_accuracy = 0;
  std::string first_bad;
  for (int64_t i = 0; i < kNatsCellCount; ++i) {
    const TableRow& row = rows[size_t(i)];
    auto note = [&](int64_t& count, const std::string& what) {
      if (count++ == 0 && first_bad.empty())
        first_bad = "row " + std::to_string(i) + " (" + row.arch + "): " + what;
    };
    if (row.index != std::to_string(i)) note(bad_index, "index column " + row.index);
    const std::string computed = nats_arch_string(nats_cell_at(i));
    if (computed != row.arch) note(bad_arch, "index -> " + computed);
    const int64_t back = nats_index(parse_nats_arch(row.arch));
    if (back != i) note(bad_back, "string -> " + std::to_string(back));
    const NatsAccuracy a = nats_accuracy(i);
    if (a.cifar10 != std::strtod(row.cifar10.c_str(), nullptr) ||
        a.cifar100 != std::strtod(row.cifar100.c_str(), nullptr) ||
        a.imagenet16_120 != std::strtod(row.imagenet.c_str(), nullptr))
      note(bad_accuracy, "accuracies differ");
  }
  INFO(first_bad);
  CHECK(bad_index == 0);
  CHECK(bad_arch == 0);
  CHECK(bad_back == 0);
  CHECK(bad_accuracy == 0);
  // The entry API ties the three together.
  const NatsEntry e = nats_entry(rows[6111].arch);
  CHECK(e.index == 6111);
  CHECK(e.arch == rows[6111].arch);
  CHECK(e.accuracy.cifar100 == std::strtod(rows[6111].cifar100.c_str(), nullptr));
}

TEST_CASE("nats: a malformed arch string is refused with the character and what was expected") {
  const std::string good =
      "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
      "skip_connect~2|";
  CHECK(error_of(good).empty());
  CHECK(nats_arch_string(parse_nats_arch(good)) == good);

  std::string e = error_of("");
  CHECK(has(e,
            "NATS-Bench arch string '': character 1: expected '|' opening node 1, got the "
            "end of the string"));
  CHECK(has(e, "(the form is |op~0|+|op~0|op~1|+|op~0|op~1|op~2|)"));

  e = error_of("|sep_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  CHECK(has(e,
            "character 2: unknown op 'sep_conv_3x3' on node 1's edge from node 0; expected "
            "one of: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"));

  e = error_of("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|");
  CHECK(has(e,
            "character 16: node 2 reads node 1 here; expected ~0 (node 2 lists nodes 0 to 1 "
            "in order, one op each)"));

  e = error_of("|none~0|+|none~0|none~1|");
  CHECK(has(e, "character 25: expected '+' before node 3 (node 2 has 2 edges), got the end"));

  e = error_of("|none~0|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  CHECK(
      has(e, "character 9: expected '+' before node 2 (node 1 has 1 edge), got 'none~0|+|non...'"));

  e = error_of("|none|+|none~0|none~1|+|none~0|none~1|none~2|");
  CHECK(has(e, "character 6: expected '~' and the node node 1's edge from node 0 reads (~0)"));

  e = error_of("|none~|+|none~0|none~1|+|none~0|none~1|none~2|");
  CHECK(has(e, "character 7: expected the node node 1's edge from node 0 reads (0), got '|+"));

  e = error_of("|none~0|+||none~1|+|none~0|none~1|none~2|");
  CHECK(
      has(e, "character 11: expected the op of node 2's edge from node 0, got '|none~1|+|no...'"));

  e = error_of(good + "+|none~0|");
  CHECK(has(e, "expected the end after node 3's 3 edges, got '+|none~0|'"));

  e = error_of("|none~0 |+|none~0|none~1|+|none~0|none~1|none~2|");
  CHECK(has(e, "character 8: expected '|' after node 1's edge from node 0, got ' |+|none~0|n...'"));
}

TEST_CASE("nats: an index outside 0..15624 is refused") {
  for (int64_t bad : {int64_t(-1), kNatsCellCount}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(
        nats_cell_at(bad),
        ("NATS-Bench index " + std::to_string(bad) + ": expected 0 to 15624").c_str(), Error);
    CHECK_THROWS_AS(nats_accuracy(bad), Error);
  }
  CHECK(nats_index(nats_cell_at(0)) == 0);
  CHECK(nats_index(nats_cell_at(kNatsCellCount - 1)) == kNatsCellCount - 1);
}

TEST_CASE("nats: the shipped NATS genotypes look up the index their file names carry") {
  const std::vector<TableRow> rows = read_table();
  int files = 0;
  for (const fs::directory_entry& f :
       fs::directory_iterator(fs::path(kSource) / "examples/networks")) {
    const std::string name = f.path().stem().string();
    if (name.rfind("nats_tss_", 0) != 0) continue;
    ++files;
    CAPTURE(name);
    const int64_t index = std::stoll(name.substr(9));
    const spec::Space space = spec::parse_file(f.path().string());
    const std::optional<NatsEntry> entry = nats_lookup(space);
    REQUIRE(entry.has_value());
    CHECK(entry->index == index);
    CHECK(entry->arch == rows[size_t(index)].arch);
    CHECK(entry->arch == genotype_string(space));
    CHECK(entry->accuracy.cifar10 == std::strtod(rows[size_t(index)].cifar10.c_str(), nullptr));
    // The description quotes the arch string and the CIFAR-10 figure.
    CHECK(has(space.description, entry->arch));
    char cifar10[16];
    std::snprintf(cifar10, sizeof cifar10, "%.2f%%", entry->accuracy.cifar10);
    CHECK(has(space.description, cifar10));
  }
  CHECK(files == 3);
  // A DARTS network is no NATS cell.
  const spec::Space darts =
      spec::parse_file((fs::path(kSource) / "examples/networks/darts_v2.json").string());
  CHECK_FALSE(nats_lookup(darts).has_value());
  std::string why;
  CHECK_FALSE(nats_cell_of(darts.cells[0], &why).has_value());
  CHECK(why == "cell 'normal' has two inputs; a NATS cell has one");
}

TEST_CASE("nats: a derived NATS cell is found with its none edges kept or dropped") {
  // What derive writes for a NATS search space: every edge kept, none included.
  const spec::Space search = nats_space(kNatsSearchNodes);
  CHECK_FALSE(nats_lookup(search).has_value());  // a search cell is no NATS cell yet
  std::string why;
  CHECK_FALSE(nats_cell_of(search.cells[0], &why).has_value());
  CHECK(why == "cell 'tss' edge /cells/0/nodes/0/from/0 has 5 candidate ops; not fixed");

  const ir::Graph graph = spec::compile(search);
  ArchState arch = initial_arch_state(graph, 1e-3, 1);
  Tensor& logits = arch.logits[0].value();
  logits.fill(0.0f);
  // Rows n1<-in | n2<-in, n2<-n1 | n3<-in, n3<-n1, n3<-n2; columns in NATS op order.
  for (auto [row, col] :
       std::vector<std::pair<int, int>>{{0, 3}, {1, 0}, {2, 3}, {3, 1}, {4, 2}, {5, 3}})
    logits.data()[row * logits.dim(1) + col] = 1.0f;
  const Derived derived = derive(search, graph, arch);
  const std::string arch_string =
      "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|";
  REQUIRE(derived.genotype == arch_string);
  const std::optional<NatsEntry> kept = nats_lookup(derived.space);
  REQUIRE(kept.has_value());
  CHECK(kept->index == nats_index(parse_nats_arch(arch_string)));
  CHECK(kept->arch == arch_string);

  // The same cell with n2's none edge left out, and its edges listed in another order.
  const spec::Space dropped = nats_space(R"(
      {"name": "n1", "edges": [{"from": "in", "op": "nor_conv_3x3"}]},
      {"name": "n2", "edges": [{"from": "n1", "op": "nor_conv_3x3"}]},
      {"name": "n3", "edges": [{"from": "n2", "op": "nor_conv_3x3"},
                               {"from": "in", "op": "skip_connect"},
                               {"from": "n1", "op": "nor_conv_1x1"}]})");
  const std::optional<NatsEntry> without = nats_lookup(dropped);
  REQUIRE(without.has_value());
  CHECK(without->index == kept->index);
  CHECK(without->arch == arch_string);

  // Not NATS cells: another op, a parallel edge, an output that is not the last node.
  const std::string n1 = R"({"name": "n1", "edges": [{"from": "in", "op": "nor_conv_3x3"}]},)";
  const std::string n2 = R"({"name": "n2", "edges": [{"from": "n1", "op": "nor_conv_3x3"}]},)";
  spec::Space other = nats_space(n1 + n2 + R"(
      {"name": "n3", "edges": [{"from": "n2", "op": "sep_conv_3x3"}]})");
  CHECK_FALSE(nats_cell_of(other.cells[0], &why).has_value());
  CHECK(why ==
        "cell 'tss' edge /cells/0/nodes/2/edges/0 has op 'sep_conv_3x3', not one of: none, "
        "skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3");
  other = nats_space(n1 + n2 + R"(
      {"name": "n3", "edges": [{"from": "n2", "op": "nor_conv_3x3"},
                               {"from": "n2", "op": "skip_connect"}]})");
  CHECK_FALSE(nats_cell_of(other.cells[0], &why).has_value());
  CHECK(why == "cell 'tss' edge /cells/0/nodes/2/edges/1 is a second edge from 'n2'");
  other = dropped;
  other.cells[0].output.concat = {"n2"};
  CHECK_FALSE(nats_lookup(other).has_value());
}

TEST_CASE("nats: skip-connection ratio per cell type and over all of them") {
  // A hand-made DARTS-style network: normal keeps 4 edges, 3 of them skip; reduce keeps 4,
  // 1 skip. Overall 4 of 8.
  const spec::Space darts = spec::parse_string(R"({
    "format": 1, "name": "hand",
    "cells": [
      {"name": "normal", "inputs": ["a", "b"],
       "nodes": [{"name": "x", "edges": [{"from": "a", "op": "skip_connect"},
                                         {"from": "b", "op": "skip_connect"}]},
                 {"name": "y", "edges": [{"from": "x", "op": "skip_connect"},
                                         {"from": "a", "op": "sep_conv_3x3"}]}],
       "output": {"concat": ["x", "y"]}},
      {"name": "reduce", "inputs": ["a", "b"], "reduction": true,
       "nodes": [{"name": "x", "edges": [{"from": "a", "op": "max_pool_3x3"},
                                         {"from": "b", "op": "skip_connect"}]},
                 {"name": "y", "edges": [{"from": "x", "op": "dil_conv_3x3"},
                                         {"from": "b", "op": "sep_conv_5x5"}]}],
       "output": {"concat": ["x", "y"]}}
    ],
    "network": {"input": [3, 16, 16], "classes": 10,
                "stem": [{"op": "conv_3x3", "channels": 12}, {"op": "batch_norm"}],
                "body": [{"cell": "normal", "channels": 4, "repeat": 2},
                         {"cell": "reduce", "channels": 8}],
                "head": [{"op": "global_avg_pool"}, {"op": "linear"}]}
  })",
                                               "hand.json");
  const SkipRatio r = skip_ratio(darts);
  REQUIRE(r.cells.size() == 2);
  CHECK(r.cells[0].cell == "normal");
  CHECK(r.cells[0].skip == 3);
  CHECK(r.cells[0].edges == 4);
  CHECK(r.cells[0].ratio() == 0.75);
  CHECK(r.cells[1].skip == 1);
  CHECK(r.cells[1].edges == 4);
  CHECK(r.skip == 4);  // the two normal instances count once: per cell type
  CHECK(r.edges == 8);
  CHECK(r.ratio() == 0.5);

  // A NATS cell counts all 6 edges, a dropped none edge included: 1 skip of 6.
  const spec::Space nats = nats_space(R"(
      {"name": "n1", "edges": [{"from": "in", "op": "nor_conv_3x3"}]},
      {"name": "n2", "edges": [{"from": "n1", "op": "nor_conv_3x3"}]},
      {"name": "n3", "edges": [{"from": "in", "op": "skip_connect"},
                               {"from": "n1", "op": "none"},
                               {"from": "n2", "op": "nor_conv_3x3"}]})");
  const SkipRatio n = skip_ratio(nats);
  CHECK(n.skip == 1);
  CHECK(n.edges == 6);

  // A search space has no skip ratio yet.
  CHECK_THROWS_WITH_AS(skip_ratio(nats_space(kNatsSearchNodes)),
                       "nats.json:/cells/0/nodes/0/from/0: the skip-connection ratio is defined "
                       "for a fixed cell; this edge has 5 candidate ops (derive the network first)",
                       Error);
}
