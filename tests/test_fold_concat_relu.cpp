// The compile pass that folds a search cell output's preprocessing ReLU into the cell's
// concat (spec/fold_concat_relu.h): which nodes it folds, that fixed networks keep theirs,
// and that a search network's logits and every gradient stay the same bit for bit.
#include <string>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/bits.h"
#include "tests/support/darts_step.h"

using namespace cellgraph;

namespace {

bool rectifying(const ir::Node& n) {
  return n.op == OpKind::concat && std::get<ConcatAttrs>(n.attrs).relu;
}

}  // namespace

TEST_CASE("fold: a search network's cell outputs take their preprocessing ReLU") {
  const ir::Graph folded = spec::compile(testing::darts_space(32));
  const ir::Graph apart = spec::compile(testing::darts_space(32), {.fold_relus = false});
  folded.verify();
  // Cells 0-6 each end in a concat read by one shared ReLU (cells k+1 and k+2 read it; cell
  // 6's only by cell 7); cell 7's concat feeds the head and the stem's output is a BN's.
  std::vector<int32_t> sharing;
  for (const ir::Node& n : folded.nodes)
    if (rectifying(n)) sharing.push_back(n.cells_sharing);
  CHECK(sharing == std::vector<int32_t>{2, 2, 2, 2, 2, 2, 1});
  CHECK(folded.nodes.size() == apart.nodes.size() - 7);
  CHECK(folded.values.size() == apart.values.size() - 7);
  for (const ir::Node& n : folded.nodes) {
    if (n.op != OpKind::relu) continue;
    const ir::Value& in = folded.value(n.inputs[0]);
    CHECK((!in.producer.valid() || folded.node(in.producer).op != OpKind::concat));
  }
  CHECK(folded.weight_count() == apart.weight_count());
  CHECK(folded.candidates.size() == apart.candidates.size());
}

TEST_CASE("fold: a fixed network keeps its ReLUs apart (export cuts cells by label)") {
  // DARTS_V2 as shipped: the second-to-last cell's concat is read by the last cell's
  // preprocessing ReLU alone, the shape the pass folds in a search network.
  const ir::Graph g = spec::compile(
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/networks/darts_v2.json"));
  int relu_after_concat = 0;
  for (const ir::Node& n : g.nodes) {
    CHECK(!rectifying(n));
    if (n.op != OpKind::relu) continue;
    const ir::Value& in = g.value(n.inputs[0]);
    relu_after_concat += in.producer.valid() && g.node(in.producer).op == OpKind::concat;
  }
  CHECK(relu_after_concat > 0);
}

TEST_CASE("fold: a search step's logits and gradients are the same bit for bit") {
  // 8 x 8 images keep DARTS' eight cells small; every candidate active, then a sparse set
  // (two ops per edge), as sparse algorithms run it.
  const ir::Graph folded = spec::compile(testing::darts_space(8));
  const ir::Graph apart = spec::compile(testing::darts_space(8), {.fold_relus = false});
  const sched::ActiveSet sparse =
      testing::ops_active(folded, {Candidate::sep_conv_3x3, Candidate::skip_connect});
  for (const bool all : {true, false}) {
    const char* which = all ? "every candidate" : "two per edge";
    INFO(which);
    const sched::ActiveSet active = all ? sched::all_active(folded) : sparse;
    const std::vector<std::vector<float>> a = testing::search_step(folded, active),
                                          b = testing::search_step(apart, active);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("result " << i);
      CHECK(testing::same_bits(a[i], b[i]));
    }
  }
}
