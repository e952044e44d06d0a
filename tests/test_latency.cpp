// Latency tables (algorithms/latency.h): the penalty's gradient against known answers, and a
// table measured on the tiny space, through its JSON, as matrices and as an estimate.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "algorithms/derive.h"
#include "algorithms/latency.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tests/support/tiny_search.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {
std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("cellgraph_latency_" + std::to_string(::getpid()) + "_" + name))
      .string();
}
}  // namespace

TEST_CASE("latency: the penalty's gradient is p_j (Lat_j - <p, Lat>) per row") {
  const Tensor g1 = latency_gradient(Tensor::from_vector({1, 2}, {0.0f, float(std::log(3.0))}),
                                     Tensor::from_vector({1, 2}, {4.0f, 0.0f}));
  CHECK(g1.to_vector()[0] == doctest::Approx(0.75).epsilon(1e-6));
  CHECK(g1.to_vector()[1] == doctest::Approx(-0.75).epsilon(1e-6));
  const Tensor g2 = latency_gradient(Tensor::from_vector({1, 2}, {0.0f, 0.0f}),
                                     Tensor::from_vector({1, 2}, {1.0f, 3.0f}));
  CHECK(g2.to_vector()[0] == doctest::Approx(-0.5).epsilon(1e-6));
  CHECK(g2.to_vector()[1] == doctest::Approx(0.5).epsilon(1e-6));
  // Rows are independent; the expected latency is sum_rows <p, Lat>.
  const Tensor a = Tensor::from_vector({2, 2}, {0.0f, float(std::log(3.0)), 0.0f, 0.0f});
  const Tensor lat = Tensor::from_vector({2, 2}, {4.0f, 0.0f, 1.0f, 3.0f});
  const std::vector<float> g = latency_gradient(a, lat).to_vector();
  CHECK(g[0] == doctest::Approx(0.75).epsilon(1e-6));
  CHECK(g[3] == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(expected_latency(a, lat) == doctest::Approx(1.0 + 2.0).epsilon(1e-6));
}

TEST_CASE("latency: a measured table of the tiny space, its JSON, matrices and estimates") {
  testing::TinySearch t("darts");
  const LatencyTable table =
      measure_latency(t.graph, t.space, LatencyOptions{.batch = 2, .warmup = 1, .repeats = 3});
  CHECK(table.instances.at("normal") == 1);
  CHECK(table.batch == 2);
  CHECK(table.rest_ms > 0);
  const auto& edges = table.ms.at("normal");
  REQUIRE(edges.size() == 5);  // node a: 2 edges, node b: 3
  for (const auto& entry : edges) {
    const std::string& edge = entry.first;
    const std::map<std::string, double>& ops = entry.second;
    CAPTURE(edge);
    CHECK(ops.at("none") == 0);
    CHECK(ops.at("skip_connect") == 0);  // the identity runs no node
    CHECK(ops.at("sep_conv_3x3") > 0);
    CHECK(ops.at("max_pool_3x3") > 0);
  }
  // Round trip through the file.
  const std::string path = temp_path("table.json");
  std::ofstream(path) << spec::dump(latency_json(table), 2);
  const LatencyTable back = read_latency_table(path);
  CHECK(back.ms == table.ms);
  CHECK(back.rest_ms == table.rest_ms);
  CHECK(back.device == table.device);
  const std::vector<Tensor> lat = latency_matrices(t.graph, back);
  REQUIRE(lat.size() == 1);
  const ir::ArchGroup& g = t.graph.arch_groups[0];
  CHECK(lat[0].to_vector()[2] ==
        doctest::Approx(back.ms.at("normal").at(g.row_labels[0]).at("sep_conv_3x3")));

  // A derived network's estimate: rest_ms plus its edges' ops.
  std::vector<float> weights(size_t(g.rows) * 4, 0.0f);
  for (int32_t r = 0; r < g.rows; ++r) weights[size_t(r) * 4 + 2] = 1.0f;  // sep_conv_3x3
  const Derived derived = derive_by_ranking(t.space, t.graph, {weights});
  double expect = table.rest_ms;
  int edges_kept = 0;
  for (const spec::Node& node : derived.space.cells[0].nodes)
    for (const spec::Edge& edge : node.edges) {
      for (const auto& [row, ops] : edges)
        if (row.rfind(node.name + "/", 0) == 0 && row.substr(row.find("<-") + 2) == edge.from)
          expect += ops.at(edge.ops[0]);
      ++edges_kept;
    }
  CHECK(edges_kept == 4);  // keep 2 per node
  CHECK(estimated_latency_ms(table, derived.space) == doctest::Approx(expect));

  // A table without one of the graph's ops is refused by name.
  spec::JsonValue j = latency_json(table);
  std::string text = spec::dump(j, 2);
  const std::string op = "\"max_pool_3x3\"";
  text.replace(text.find(op), op.size(), "\"avg_pool_3x3\"");
  std::ofstream(path) << text;
  CHECK_THROWS_WITH_AS(latency_matrices(t.graph, read_latency_table(path)),
                       doctest::Contains(": no op 'max_pool_3x3'"), Error);
  std::ofstream(path) << R"({"format": 1, "spec": "x"})";
  CHECK_THROWS_WITH_AS(read_latency_table(path), doctest::Contains(":/: missing 'space'"), Error);
  std::filesystem::remove(path);
}

// A search network's cell outputs carry their preprocessing ReLU folded in
// (spec/fold_concat_relu.h); the table must still time what a derived network runs: the
// concat once and each reading cell's ReLU, the same kernels as without the fold.
TEST_CASE("latency: a folded preprocessing ReLU is timed once per cell, as apart") {
  spec::Space space =
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/darts_cnn.json");
  space.network.in_channels = 3;
  space.network.in_height = space.network.in_width = 8;
  const LatencyOptions once{.batch = 1, .warmup = 0, .repeats = 1};
  auto counts = [&](bool fold) {
    const ir::Graph graph = spec::compile(space, {.fold_relus = fold});
    reset_kernel_counts();
    measure_latency(graph, space, once);
    return kernel_counts().forward;
  };
  const auto folded = counts(true), apart = counts(false);
  for (int op = 0; op < kOpCount; ++op) {
    CAPTURE(op_name(OpKind(op)));
    CHECK(folded[size_t(op)] == apart[size_t(op)]);
  }
}
