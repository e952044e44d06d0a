// The spec compiler: structure, weight counts against the DARTS reference, errors.
#include <string>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "spec/compile.h"
#include "spec/parse.h"

using namespace cellgraph;

namespace {
const std::string kDarts = std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/darts_cnn.json";

spec::Space darts_with_input(int64_t c, int64_t h, int64_t w) {
  spec::Space s = spec::parse_file(kDarts);
  s.network.in_channels = c;
  s.network.in_height = h;
  s.network.in_width = w;
  return s;
}
}  // namespace

TEST_CASE("compile: the DARTS search network has the reference weight counts") {
  // DESIGN.md §4: 1,930,618 weights for C=16, 8 cells, 10 classes, 3x32x32 input;
  // 1,929,754 for 1x28x28 (only the stem conv's input channels differ).
  const ir::Graph g32 = spec::compile(darts_with_input(3, 32, 32));
  CHECK(g32.weight_count() == 1930618);
  const ir::Graph g28 = spec::compile(darts_with_input(1, 28, 28));
  CHECK(g28.weight_count() == 1929754);
}

TEST_CASE("compile: DARTS structure — 8 cells x 14 edges x 8 candidates, two shared groups") {
  const ir::Graph g = spec::compile(darts_with_input(3, 32, 32));
  g.verify();
  CHECK(g.candidates.size() == 8 * 14 * 8);
  REQUIRE(g.arch_groups.size() == 2);
  CHECK(g.arch_groups[0].name == "normal");
  CHECK(g.arch_groups[1].name == "reduce");
  for (const ir::ArchGroup& group : g.arch_groups) {
    CHECK(group.rows == 14);
    CHECK(group.columns.size() == 8);
  }
  // Every normal cell reads the same 14 rows: 6 normal cells x 14 edges x 8 ops.
  int normal = 0;
  for (const ir::Candidate& c : g.candidates) normal += c.arch.value == 0;
  CHECK(normal == 6 * 14 * 8);
  CHECK(g.value(g.logits).shape == Shape{1, 10});
  CHECK(g.macs() > 0);
}

TEST_CASE("compile: a spatial size too small for a factorized reduce is a named error") {
  // 3x5x5: in the first reduction cell, skip_connect at stride 2 is a factorized reduce
  // whose two paths give 3x3 and 2x2 pixels, which cannot be concatenated.
  try {
    spec::compile(darts_with_input(3, 5, 5));
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("darts_cnn.json:/cells/1/nodes/0") != std::string::npos);
    CHECK(msg.find("at /network/body/1") != std::string::npos);
    CHECK(msg.find("concat") != std::string::npos);
  }
}
