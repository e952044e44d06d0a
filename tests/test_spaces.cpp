// The search spaces of examples/spaces: each compiles at its full size with the structure
// its paper gives, and a reduced copy (a quarter of the channels, 8x8 images) is searched
// for two steps and derived into a fixed network that reads back and compiles.
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/data_shape.h"
#include "algorithms/search_session.h"
#include "engine/tensor/random.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;
namespace fs = std::filesystem;

namespace {

spec::Space space_file(const std::string& name) {
  return spec::parse_file((fs::path(CELLGRAPH_SOURCE_DIR) / "examples/spaces" / name).string());
}

std::vector<std::string> table3() {
  return {"none",         "max_pool_3x3", "avg_pool_3x3", "skip_connect", "neg_identity",
          "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"};
}

Dataset random_data(int64_t n) {
  Rng rng(23);
  Dataset d;
  d.images = normal_tensor({n, 3, 8, 8}, 0, 1, rng);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(int32_t(rng.below(10)));
  d.num_classes = 10;
  d.name = "random";
  return d;
}

// Two DARTS steps on a quarter of the channels and 8x8 images, then derivation. The
// derived network must read back from its JSON and compile.
Derived search_two_steps(spec::Space space) {
  for (spec::Layer& l : space.network.stem)
    if (l.channels > 0) l.channels /= 4;
  for (spec::Stage& s : space.network.body) s.channels /= 4;
  const Dataset data = random_data(8);
  fit_space_to_data(space, data_shape(data));
  SearchSession session(space, data,
                        SearchOptions{.algorithm = "darts",
                                      .epochs = 1,
                                      .batch_size = 2,
                                      .seed = 3,
                                      .log_every = 0,
                                      .lr = 0.05f,
                                      .arch_lr = 0.01f});
  session.step();
  session.step();
  CHECK(session.global_step() == 2);
  Derived d = session.derive();
  const spec::Space again = spec::parse_string(spec::to_json(d.space), "derived.json");
  CHECK(again.is_fixed());
  CHECK(spec::compile(again).weight_count() > 0);
  return d;
}

const ir::ArchGroup& group(const ir::Graph& g, const std::string& name) {
  for (const ir::ArchGroup& a : g.arch_groups)
    if (a.name == name) return a;
  FAIL("no architecture group ", name);
  return g.arch_groups.at(0);
}

}  // namespace

TEST_CASE("spaces: the HB space is DARTS' macro network with 12-edge HB cells over Table 3") {
  const spec::Space s = space_file("hb_cnn.json");
  const ir::Graph g = spec::compile(s);
  for (const char* type : {"normal", "reduce"}) {
    CAPTURE(type);
    const spec::Cell& cell = *s.find_cell(type);
    REQUIRE(cell.nodes.size() == 4);
    std::vector<std::string> states = {"c_k-2", "c_k-1"};
    for (const spec::Node& node : cell.nodes) {
      // x_t = o1(x_{t-1}) + o2(x_{t-1}) + o(x_{t-2})
      REQUIRE(node.edges.size() == 3);
      CHECK(node.edges[0].from == states.back());
      CHECK(node.edges[1].from == states.back());
      CHECK(node.edges[2].from == states[states.size() - 2]);
      CHECK(node.keep == 3);
      for (const spec::Edge& e : node.edges) CHECK(e.ops == table3());
      states.push_back(node.name);
    }
    CHECK(cell.output.concat == std::vector<std::string>{"x0", "x1", "x2", "x3"});
    const ir::ArchGroup& a = group(g, type);
    CHECK(a.rows == 12);
    CHECK(a.columns == table3());
  }
  // 8 cells at C=16 (stem 3C), reductions at 1/3 and 2/3 of the depth.
  CHECK(s.network.stem.at(0).channels == 48);
  std::vector<std::string> cells;
  for (const spec::Stage& stage : s.network.body)
    for (int r = 0; r < stage.repeat; ++r) cells.push_back(stage.cell);
  CHECK(cells == std::vector<std::string>{"normal", "normal", "reduce", "normal", "normal",
                                          "reduce", "normal", "normal"});
  CHECK(g.candidates.size() == 8 * 12 * 9);
}

TEST_CASE("spaces: the HB space searches two steps and derives all 3 edges of every node") {
  const Derived d = search_two_steps(space_file("hb_cnn.json"));
  for (const spec::Cell& cell : d.space.cells)
    for (const spec::Node& node : cell.nodes) {
      CAPTURE(cell.name + "/" + node.name);
      REQUIRE(node.edges.size() == 3);
      for (const spec::Edge& e : node.edges) CHECK(e.ops.at(0) != "none");
    }
}

TEST_CASE("spaces: the HB init variant starts o2 one-hot on identity, o on negative identity") {
  const spec::Space s = space_file("hb_cnn_init.json");
  const spec::Space plain = space_file("hb_cnn.json");
  const ir::Graph g = spec::compile(s);
  for (const char* type : {"normal", "reduce"}) {
    CAPTURE(type);
    const ir::ArchGroup& a = group(g, type);
    int skip = 0, neg = 0;
    for (int32_t r = 0; r < a.rows; ++r) {
      const int32_t hot = a.one_hot[size_t(r)];
      const int edge = r % 3;  // rows follow the node's edges: o1, o2, o
      CHECK((hot >= 0) == (edge != 0));
      if (edge == 1) skip += a.columns[size_t(hot)] == "skip_connect";
      if (edge == 2) neg += a.columns[size_t(hot)] == "neg_identity";
    }
    CHECK(skip == 4);
    CHECK(neg == 4);
  }
  // The same network as the plain HB space: only the starting point differs.
  CHECK(g.weight_count() == spec::compile(plain).weight_count());
  const Derived d = search_two_steps(s);
  CHECK(d.space.cells.size() == 2);
}

TEST_CASE("spaces: the AGD space is the DARTS cell with path weights over Table 3, from zero") {
  const spec::Space s = space_file("agd_cnn.json");
  const ir::Graph g = spec::compile(s);
  CHECK(s.arch.init_std == 0);  // alpha and beta start at zero
  int paths = 0;
  for (const ir::ArchGroup& a : g.arch_groups) {
    if (a.kind != ir::ArchGroup::Kind::edge_paths) {
      CHECK(a.rows == 14);
      CHECK(a.columns == table3());
      continue;
    }
    ++paths;
    CHECK(a.rows == 1);
  }
  CHECK(paths == 2 * 4);  // one per node of each cell type
  for (const spec::Cell& cell : s.cells)
    for (const spec::Node& node : cell.nodes) {
      CHECK(node.path_weights);
      CHECK(node.keep == 2);
    }
  // Zero logits: every path weight of a node with n edges starts at 1/n.
  const ArchState arch = prepared_arch_state(find_algorithm("darts"), g, s, 1);
  const std::vector<Var> c = find_algorithm("darts").coefficients(arch);
  for (size_t i = 0; i < g.arch_groups.size(); ++i)
    for (float w : c[i].value().to_vector())
      CHECK(w == doctest::Approx(1.0 / double(g.arch_groups[i].columns.size())));
}

TEST_CASE("spaces: the AGD space searches two steps and derives 2 edges per node by p x weight") {
  const spec::Space s = space_file("agd_cnn.json");
  const Derived d = search_two_steps(s);
  for (const spec::Cell& cell : d.space.cells)
    for (const spec::Node& node : cell.nodes) {
      CAPTURE(cell.name + "/" + node.name);
      CHECK(node.edges.size() == 2);
      CHECK_FALSE(node.path_weights);
    }
}

TEST_CASE("spaces: the NATS-Bench space compiles, searches and derives a topology cell") {
  const spec::Space s = space_file("nats_bench_tss.json");
  const ir::Graph g = spec::compile(s);
  CHECK(g.candidates.size() == 15 * 6 * 5);
  const Derived d = search_two_steps(s);
  // |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
  CHECK(d.genotype.size() > 0);
  CHECK(d.genotype.front() == '|');
  int edges = 0;
  for (const spec::Node& node : d.space.cells.at(0).nodes) edges += int(node.edges.size());
  CHECK(edges == 6);
}
