// The spec compiler: structure, weight counts against the DARTS reference, errors.
#include <string>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/builder.h"
#include "spec/candidate_build.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/op_tests.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {
const char* const kDarts = CELLGRAPH_SOURCE_DIR "/examples/spaces/darts_cnn.json";

spec::Space darts_with_input(int64_t c, int64_t h, int64_t w) {
  spec::Space s = spec::parse_file(kDarts);
  s.network.in_channels = c;
  s.network.in_height = h;
  s.network.in_width = w;
  return s;
}
}  // namespace

TEST_CASE("compile: the DARTS search network has the reference weight counts") {
  // The DARTS search network's reference counts: 1,930,618 weights for C=16, 8 cells, 10 classes,
  // 3x32x32 input; 1,929,754 for 1x28x28 (only the stem conv's input channels differ).
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

TEST_CASE("compile: a search cell's node sums all its edges' candidates in one weighted sum") {
  const ir::Graph g = spec::compile(darts_with_input(3, 32, 32));
  int node_sums = 0;
  for (const ir::Node& n : g.nodes) {
    CHECK(n.op != OpKind::add_n);  // no edge sums to add: every node of a DARTS cell is mixed
    if (n.op != OpKind::weighted_sum) continue;
    const auto& a = std::get<WeightedSumAttrs>(n.attrs);
    INFO(n.label);
    REQUIRE(n.drops_absent_inputs);
    REQUIRE(a.rows.size() == a.columns.size());
    REQUIRE(n.input_candidates.size() == a.columns.size());
    ++node_sums;
    // Node k (0-based) of a DARTS cell has k + 2 edges of 8 candidates, each term weighed
    // at its own candidate's row and column of the cell type's matrix.
    CHECK(a.columns.size() % 8 == 0);
    for (size_t i = 0; i < a.columns.size(); ++i) {
      const ir::Candidate& c = g.candidate(n.input_candidates[i]);
      CHECK(c.row == a.rows[i]);
      CHECK(c.column == a.columns[i]);
      CHECK(c.output == n.inputs[i]);
      CHECK(g.value(n.inputs.back()).arch == c.arch);
    }
  }
  CHECK(node_sums == 8 * 4);
}

TEST_CASE("compile: a fixed cell still sums its edges with add_n") {
  spec::Space s = spec::parse_string(testing::kTinySpace, "tiny.json");
  for (spec::Node& node : s.cells[0].nodes)
    for (spec::Edge& edge : node.edges) edge.ops = {"sep_conv_3x3"};
  const ir::Graph g = spec::compile(s);
  REQUIRE(g.candidates.empty());
  int add_n = 0, weighted = 0;
  for (const ir::Node& n : g.nodes) {
    add_n += n.op == OpKind::add_n;
    weighted += n.op == OpKind::weighted_sum;
  }
  CHECK(add_n == 2);
  CHECK(weighted == 0);
}

TEST_CASE("compile: a search network rectifies a cell's output once for both cells reading it") {
  // DARTS: the stem output is read by cell 0 (both inputs) and cell 1 (c_k-2); cell k's
  // output by cells k+1 and k+2 (through a factorized reduce after a reduction cell), the
  // last two cells' by one cell or the head only.
  // (Unfolded here: tests/test_fold_concat_relu.cpp has the fold of these ReLUs into the
  // cells' concats.)
  const ir::Graph g = spec::compile(darts_with_input(3, 32, 32), {.fold_relus = false});
  std::vector<int32_t> sharing;
  for (const ir::Node& n : g.nodes)
    if (n.op == OpKind::relu && n.label.rfind("search_preprocess.", 0) == 0)
      sharing.push_back(n.cells_sharing);
  CHECK(sharing == std::vector<int32_t>{3, 2, 2, 2, 2, 2, 2});
  int32_t preprocess_relus = 0;
  for (const ir::Node& n : g.nodes)
    preprocess_relus += n.op == OpKind::relu && !n.candidate.valid() && !n.absent_with_input;
  CHECK(preprocess_relus == 7 + 1);  // the seven shared and the last cell's c_k-1
}

TEST_CASE("compile: a fixed network keeps one ReLU per preprocessing (cells are cut by label)") {
  spec::Space s = spec::parse_string(testing::kTinySpace, "tiny.json");
  for (spec::Node& node : s.cells[0].nodes)
    for (spec::Edge& edge : node.edges) edge.ops = {"max_pool_3x3"};
  const ir::Graph g = spec::compile(s);
  std::vector<std::string> relus;
  for (const ir::Node& n : g.nodes)
    if (n.op == OpKind::relu) relus.push_back(n.label);
  CHECK(relus == std::vector<std::string>{"cells.0.pre0.relu", "cells.0.pre1.relu"});
  for (const ir::Node& n : g.nodes) CHECK(n.cells_sharing == 1);
}

TEST_CASE("compile: the factorized reduce is DARTS' stride-2 convs of x and of x[:, :, 1:, 1:]") {
  // Built as stride-1 convs on the even and the odd pixels; checked here against the
  // definition, with the same weights, forward and backward, on two even sizes.
  for (int64_t size : {6, 8}) {
    CAPTURE(size);
    ir::Graph g;
    ir::Builder b(g);
    g.input = b.input({1, 4, size, size});
    g.logits = ir::factorized_reduce(b, g.input, 6, true, "fr");
    const ir::ParameterStore params(g, 3);
    auto param = [&](const std::string& name) {
      for (size_t i = 0; i < g.params.size(); ++i)
        if (g.params[i].name == name) return params.all()[i];
      FAIL("no parameter ", name);
      return Var();
    };
    Rng rng(size);
    const Var x(normal_tensor({2, 4, size, size}, 0, 1, rng), true);
    const Tensor dy = normal_tensor({2, 6, size / 2, size / 2}, 0, 1, rng);
    const sched::RunOptions options{.training = true};
    const Var y = sched::run(g, params, sched::make_plan(g, {}), x, options);
    y.backward(dy);
    const std::vector<float> dx = x.grad().to_vector();

    const Var x2(x.value().clone(), true);
    constexpr int64_t kOpen = INT64_MAX;
    const Var r = ops::relu(x2);
    const Var shifted = ops::slice(r, {{0, 0, 1, 1}, {kOpen, kOpen, kOpen, kOpen}, {1, 1, 1, 1}});
    const Var cat =
        ops::concat({ops::conv2d(r, param("fr.conv1.weight"), Var(), {.stride = 2}),
                     ops::conv2d(shifted, param("fr.conv2.weight"), Var(), {.stride = 2})});
    const Var want =
        ops::batch_norm(cat, param("fr.bn.gamma"), param("fr.bn.beta"), Var(Tensor::zeros({6})),
                        Var(Tensor::full({6}, 1.0f)), BatchNormAttrs{});
    want.backward(dy);
    auto wide = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
    testing::check_close("y", y.value().to_vector(), wide(want.value().to_vector()), 1e-5);
    testing::check_close("dx", dx, wide(x2.grad().to_vector()), 1e-5);
  }
}

TEST_CASE("compile: neg_identity at stride 2 is -1 x the factorized reduce") {
  // The same factorized reduce (same parameter names, so the same seeded weights) built
  // once as skip_connect's stride-2 form and once under neg_identity: outputs and input
  // gradients are exact negatives, in a search cell (no affine BN) and a fixed one.
  for (bool search : {true, false}) {
    CAPTURE(search);
    Rng rng(11);
    const Tensor images = normal_tensor({2, 4, 8, 8}, 0, 1, rng);
    const Tensor dy = normal_tensor({2, 4, 4, 4}, 0, 1, rng);
    std::vector<std::vector<float>> outputs, grads;
    for (Candidate op : {Candidate::skip_connect, Candidate::neg_identity}) {
      ir::Graph g;
      ir::Builder b(g);
      g.input = b.input({1, 4, 8, 8});
      g.logits = build_candidate(
          b, op, g.input, CandidateSite{.channels = 4, .stride = 2, .search = search, .name = "e"});
      const ir::ParameterStore params(g, 3);
      const Var x(images.clone(), true);
      const Var y = sched::run(g, params, sched::make_plan(g, {}), x, {.training = true});
      y.backward(dy);
      outputs.push_back(y.value().to_vector());
      grads.push_back(x.grad().to_vector());
    }
    REQUIRE(outputs[0].size() == outputs[1].size());
    for (size_t i = 0; i < outputs[0].size(); ++i) REQUIRE(outputs[1][i] == -outputs[0][i]);
    for (size_t i = 0; i < grads[0].size(); ++i) REQUIRE(grads[1][i] == -grads[0][i]);
  }
}

TEST_CASE("compile: an odd map at a factorized reduce is a named error at the spec's edge") {
  // 3x5x5: in the first reduction cell, skip_connect at stride 2 is a factorized reduce
  // whose two paths give 3x3 and 2x2 pixels, which cannot be concatenated.
  const spec::Space s = darts_with_input(3, 5, 5);
  CHECK_THROWS_WITH_AS(
      spec::compile(s),
      (s.file +
       ":/cells/1/nodes/0/from/0: cells.2.n0.e0.skip_connect: skip_connect at stride 2 (a "
       "factorized reduce) cannot halve a 5x5 map: its even and its odd pixels give 3x3 and 2x2 "
       "halves; expected even sides here (change network.input or the stride-2 steps before "
       "this cell) (in cells.2, the cell at /network/body/1)")
          .c_str(),
      Error);
}

TEST_CASE("compile: a block stage strides in its first block only, as validate walks it") {
  // NATS-Bench's layout with the middle block repeated: 32x32 -> 16x16 once, not 8x8.
  spec::Space s =
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/nats_bench_tss.json");
  spec::Stage* block = nullptr;
  int first = 0;  // the instance index of the block stage's first block
  for (spec::Stage& stage : s.network.body) {
    if (!stage.block.empty()) {
      block = &stage;
      break;
    }
    first += stage.repeat;
  }
  REQUIRE(block != nullptr);
  REQUIRE(block->stride == 2);
  block->repeat = 3;
  const ir::Graph g = spec::compile(s);
  const auto map_after = [&](const std::string& label) {
    for (const ir::Node& n : g.nodes)
      if (n.label == label) return g.value(n.outputs[0]).shape;
    FAIL("no node ", label);
    return Shape{};
  };
  CHECK(map_after("cells." + std::to_string(first) + ".add") == Shape{1, block->channels, 16, 16});
  CHECK(map_after("cells." + std::to_string(first + 1) + ".add") ==
        Shape{1, block->channels, 16, 16});
  CHECK(map_after("cells." + std::to_string(first + 2) + ".add") ==
        Shape{1, block->channels, 16, 16});
}

TEST_CASE("compile: an edge coefficient scales the edge, a trainable one is a weight") {
  // y = 0.5 * x + c * (-x) with c trainable from -0.25: y = 0.75 x, and dL/dc = <dy, -x>.
  const spec::Space s = spec::parse_string(R"({
    "format": 1, "name": "scaled",
    "cells": [{"name": "c", "inputs": ["x"], "preprocess": "none",
               "nodes": [{"name": "y", "edges": [
                 {"from": "x", "op": "skip_connect", "coefficient": 0.5},
                 {"from": "x", "op": "neg_identity",
                  "coefficient": {"init": -0.25, "trainable": true}}]}],
               "output": {"node": "y"}}],
    "network": {"input": [2, 4, 4], "classes": 3, "body": [{"cell": "c", "channels": 2}],
                "head": [{"op": "global_avg_pool"}, {"op": "linear"}]}})",
                                           "scaled.json");
  ir::Graph g = spec::compile(s);
  const ir::ParameterStore params(g, 1);
  Var fixed, trainable;
  for (size_t i = 0; i < g.params.size(); ++i) {
    if (g.params[i].name == "cells.0.y.e0.coefficient") fixed = params.all()[i];
    if (g.params[i].name == "cells.0.y.e1.coefficient") trainable = params.all()[i];
  }
  REQUIRE(fixed.defined());
  REQUIRE(trainable.defined());
  CHECK(fixed.value().to_vector() == std::vector<float>{0.5f});
  CHECK(trainable.value().to_vector() == std::vector<float>{-0.25f});
  CHECK_FALSE(fixed.requires_grad());  // a buffer: no optimizer touches it
  CHECK(trainable.requires_grad());
  CHECK(g.weight_count() == 1 + 3 * 2 + 3);  // the trainable coefficient and the linear layer

  for (const ir::Node& n : g.nodes)
    if (n.label == "cells.0.y.sum") g.logits = n.outputs[0];
  Rng rng(4);
  const Var x(normal_tensor({2, 2, 4, 4}, 0, 1, rng));
  const Tensor dy = normal_tensor({2, 2, 4, 4}, 0, 1, rng);
  const Var y = sched::run(g, params, sched::make_plan(g, {}), x, {.training = true});
  y.backward(dy);
  const std::vector<float> xs = x.value().to_vector(), ys = y.value().to_vector(),
                           dys = dy.to_vector();
  double dc = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    CHECK(ys[i] == 0.75f * xs[i]);
    dc -= double(dys[i]) * double(xs[i]);
  }
  REQUIRE(trainable.has_grad());
  CHECK(trainable.grad().to_vector()[0] == doctest::Approx(dc).epsilon(1e-5));
  CHECK_FALSE(fixed.has_grad());
}
