// A ReLU folded into the depthwise convs reading it (ConvAttrs::relu_input,
// spec/fold_conv_relu.h): the op against relu then conv, bit for bit, on every CPU path
// (the depthwise loops' planes and the rectified copy the other convs read), its gradients
// against finite differences, which ReLUs the compile pass folds, and a search step of the
// folded graph against the unfolded one.
#include <cmath>
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
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::random;

// x with every element at least 0.1 from zero, where relu has no derivative (finite
// differences at eps 1e-2 must not step across it); half the elements negative.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Tensor t = random(shape, seed);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::copysign(std::fabs(p[i]) + 0.1f, p[i]);
  return t;
}

struct Case {
  const char* name;
  Shape x, w;
  ConvAttrs attrs;  // relu_input is set by the checks
};

// The forward and the three gradients of conv2d(x, relu_input) against conv2d(relu(x)),
// bit for bit; `other` adds a second reader of x (x * 0.5), so that the conv's data
// gradient is added into one already there.
void check_against_relu(const Case& c, bool other) {
  CAPTURE(c.name);
  CAPTURE(other);
  const Tensor xv = random(c.x, 1), wv = random(c.w, 2), bv = random({c.w[0]}, 3);
  // Zeros, a -0 and a NaN-free mix: relu's edge cases at x == 0.
  float* xp = const_cast<float*>(xv.data());
  xp[0] = 0.0f;
  xp[xv.numel() / 2] = -0.0f;
  ConvAttrs folded = c.attrs;
  folded.relu_input = true;
  std::vector<std::vector<float>> results[2];
  for (int f = 0; f < 2; ++f) {
    Var x(xv.clone(), true), w(wv.clone(), true), b(bv.clone(), true);
    Var y = f == 0 ? ops::conv2d(x, w, b, folded) : ops::conv2d(ops::relu(x), w, b, c.attrs);
    const Tensor dy = random(y.shape(), 4);
    Var loss = ops::sum(ops::mul(y, Var(dy)));
    if (other) loss = ops::add(loss, ops::sum(ops::mul(x, Var(random(c.x, 5)))));
    loss.backward();
    results[f] = {y.value().to_vector(), x.grad().to_vector(), w.grad().to_vector(),
                  b.grad().to_vector()};
  }
  const char* what[] = {"y", "dx", "dw", "db"};
  for (size_t i = 0; i < 4; ++i) {
    INFO(what[i]);
    CHECK(testing::same_bits(results[0][i], results[1][i]));
  }
}

// Stride-1 "same" depthwise convs, which the loops fold plane by plane (narrow 8- and
// 4-column planes, row tiles of 16 and 32, the pitched planes of other widths; 3x3 and
// 5x5, dilated), then convs served from a rectified copy: a strided and an unpadded
// depthwise conv, a dense 3x3 and a 1x1.
const std::vector<Case>& cases() {
  static const std::vector<Case> kAll = {
      {"depthwise 3x3 on 8x8 (narrow)", {2, 16, 8, 8}, {16, 1, 3, 3}, {1, 1, 1, 16}},
      {"depthwise 5x5 dilated on 8x8 (narrow)", {2, 4, 8, 8}, {4, 1, 5, 5}, {1, 4, 2, 4}},
      {"depthwise 3x3 on 4x4 (narrow)", {2, 2, 4, 4}, {2, 1, 3, 3}, {1, 1, 1, 2}},
      {"depthwise 3x3 on 32x32 (row tiles)", {2, 3, 32, 32}, {3, 1, 3, 3}, {1, 1, 1, 3}},
      {"depthwise 5x5 on 16x16 (row tiles)", {2, 4, 16, 16}, {4, 1, 5, 5}, {1, 2, 1, 4}},
      {"depthwise 3x3 dilated on 16x16", {1, 3, 16, 16}, {3, 1, 3, 3}, {1, 2, 2, 3}},
      {"depthwise 3x3 on 5x7 (pitched)", {2, 3, 5, 7}, {3, 1, 3, 3}, {1, 1, 1, 3}},
      {"depthwise 5x5 dilated on 4x4 (pitched)", {2, 3, 4, 4}, {3, 1, 5, 5}, {1, 4, 2, 3}},
      {"depthwise 3x3 on 2x2 (pitched)", {2, 3, 2, 2}, {3, 1, 3, 3}, {1, 1, 1, 3}},
      {"depthwise 5x5 dilated on 2x2 (pitched)", {2, 3, 2, 2}, {3, 1, 5, 5}, {1, 4, 2, 3}},
      {"depthwise 3x3 on 2x2, 64 channels", {2, 64, 2, 2}, {64, 1, 3, 3}, {1, 1, 1, 64}},
      {"depthwise 5x5 on 2x2, 64 channels", {2, 64, 2, 2}, {64, 1, 5, 5}, {1, 2, 1, 64}},
      {"depthwise 3x3 dilated on 2x2, 64 channels", {2, 64, 2, 2}, {64, 1, 3, 3}, {1, 2, 2, 64}},
      {"depthwise 5x5 on 4x4, 32 channels", {2, 32, 4, 4}, {32, 1, 5, 5}, {1, 2, 1, 32}},
      {"depthwise 3x3 stride 2 (copy)", {2, 3, 8, 8}, {3, 1, 3, 3}, {2, 1, 1, 3}},
      {"depthwise 3x3 unpadded (copy)", {1, 2, 6, 6}, {2, 1, 3, 3}, {1, 0, 1, 2}},
      {"dense 3x3 (copy)", {2, 3, 6, 6}, {4, 3, 3, 3}, {1, 1, 1, 1}},
      {"1x1 (copy)", {2, 4, 6, 6}, {5, 4, 1, 1}, {}},
  };
  return kAll;
}

testing::OpCase op_case(const Case& c, bool bias) {
  testing::GradCheck spec;
  spec.kind = OpKind::conv2d;
  ConvAttrs a = c.attrs;
  a.relu_input = true;
  spec.attrs = a;
  spec.inputs = {away_from_zero(c.x, 11), random(c.w, 12), bias ? random({c.w[0]}, 13) : Tensor()};
  // As conv2d's own cases (test_conv.cpp): bilinear once x's sign is fixed.
  spec.eps = 1e-2f;
  spec.atol = 2e-3f;
  spec.rtol = 1e-2f;
  return {c.name, spec};
}

std::vector<testing::OpCase> relu_input_cases() {
  return {
      op_case({"depthwise 3x3, folded ReLU", {1, 3, 6, 6}, {3, 1, 3, 3}, {1, 1, 1, 3}}, true),
      op_case({"depthwise 5x5 dilated, folded ReLU", {1, 2, 8, 8}, {2, 1, 5, 5}, {1, 4, 2, 2}},
              false),
      op_case({"depthwise stride 2, folded ReLU", {1, 2, 6, 6}, {2, 1, 3, 3}, {2, 1, 1, 2}}, true),
      op_case({"dense 3x3, folded ReLU", {1, 2, 5, 5}, {3, 2, 3, 3}, {1, 1, 1, 1}}, true)};
}

bool folded_conv(const ir::Node& n) {
  const auto* a = std::get_if<ConvAttrs>(&n.attrs);
  return a != nullptr && a->relu_input;
}

}  // namespace

CELLGRAPH_OP_CASES("conv with a folded ReLU", relu_input_cases)

TEST_CASE("conv2d relu_input: equals relu then conv2d, bit for bit, on every CPU path") {
  for (const Case& c : cases())
    for (const bool other : {false, true}) check_against_relu(c, other);
}

TEST_CASE("fold: a ReLU read by one stride-1 depthwise conv goes into the conv") {
  const ir::Graph folded = spec::compile(testing::darts_space(32));
  const ir::Graph apart = spec::compile(testing::darts_space(32), {.fold_conv_relus = false});
  folded.verify();
  int64_t relus_folded = 0, relus_apart = 0, convs = 0;
  for (const ir::Node& n : apart.nodes) relus_apart += n.op == OpKind::relu;
  for (const ir::Node& n : folded.nodes) {
    relus_folded += n.op == OpKind::relu;
    if (!folded_conv(n)) continue;
    ++convs;
    const auto& a = std::get<ConvAttrs>(n.attrs);
    CHECK(a.groups > 1);
    CHECK(a.stride == 1);
    // It reads what its ReLU read: never a ReLU's output.
    const ir::Value& in = folded.value(n.inputs[0]);
    CHECK((!in.producer.valid() || folded.node(in.producer).op != OpKind::relu));
  }
  // Every separable conv's second ReLU (its one reader the second depthwise conv); the
  // first ones are shared by the depthwise convs of every edge leaving a node (and
  // reduction cells' edges from the inputs run them at stride 2), so they stay.
  CHECK(relus_folded < relus_apart);
  CHECK(folded.nodes.size() == apart.nodes.size() - size_t(relus_apart - relus_folded));
  CHECK(convs == relus_apart - relus_folded);
  int64_t second_relus = 0;
  for (const ir::Node& n : apart.nodes)
    second_relus += n.op == OpKind::relu && n.label.find("sep_conv") != std::string::npos &&
                    n.label.find(".1.relu") != std::string::npos;
  CHECK(second_relus > 0);
  CHECK(convs >= second_relus);
  for (const ir::Node& n : folded.nodes) {
    if (n.op != OpKind::relu) continue;
    // What stays has several readers, or one that cannot take it.
    int64_t readers = 0;
    bool blocked = false;
    for (const ir::Node& r : folded.nodes)
      for (ir::ValueId in : r.inputs) {
        if (in != n.outputs[0]) continue;
        ++readers;
        const auto* a = std::get_if<ConvAttrs>(&r.attrs);
        blocked = blocked || a == nullptr || a->groups == 1 || a->stride != 1;
      }
    CHECK_MESSAGE((blocked || readers > 1), n.label);
  }
  CHECK(folded.weight_count() == apart.weight_count());
}

TEST_CASE("fold: a fixed network keeps the ReLUs before its depthwise convs") {
  const ir::Graph g = spec::compile(
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/networks/darts_v2.json"));
  for (const ir::Node& n : g.nodes) CHECK(!folded_conv(n));
}

TEST_CASE("fold: a search step with ReLUs in the convs is the unfolded one, bit for bit") {
  // The folded ReLU had the conv as its one reader, so the conv's masked data gradient is
  // the ReLU's gradient, reaching the input's slot where the ReLU's did. Weights trained (a
  // weight step) and frozen (an architecture step, where the conv keeps x for the mask
  // alone); every candidate, then two per edge.
  const ir::Graph folded = spec::compile(testing::darts_space(8));
  const ir::Graph apart = spec::compile(testing::darts_space(8), {.fold_conv_relus = false});
  const sched::ActiveSet sparse =
      testing::ops_active(folded, {Candidate::sep_conv_3x3, Candidate::dil_conv_5x5});
  for (const bool frozen : {false, true})
    for (const bool all : {true, false}) {
      CAPTURE(frozen);
      CAPTURE(all);
      const sched::ActiveSet active = all ? sched::all_active(folded) : sparse;
      const auto a = testing::search_step(folded, active, frozen),
                 b = testing::search_step(apart, active, frozen);
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        CHECK(testing::same_bits(a[i], b[i]));
      }
    }
}
