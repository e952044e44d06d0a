// The sparse scheduler: inactive candidates are not computed (kernel counts), their
// weights get no gradient, and the result equals the dense one restricted to the
// active candidates.
#include <cmath>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {
using testing::kTinySpace;
std::string darts_spec() {
  return std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/darts_cnn.json";
}

// The ReLUs stay nodes (no fold into the depthwise convs, spec/fold_conv_relu.h): several
// tests here follow a ReLU shared by candidates through the plan.
struct Fixture {
  ir::Graph graph =
      spec::compile(spec::parse_string(kTinySpace, "tiny.json"), {.fold_conv_relus = false});
  ir::ParameterStore params{graph, 11};
  Var images;
  Var coef;  // [5 edges, 4 ops]
  Fixture() {
    Rng rng(5);
    images = Var(normal_tensor({2, 1, 8, 8}, 0, 1, rng));
    coef = Var(uniform_tensor({5, 4}, 0.1f, 1.0f, rng), true);
  }
  // Coefficients with the columns of `inactive` zeroed (the dense restriction).
  Var masked_coef(const sched::ActiveSet& active) const {
    std::vector<float> c = coef.value().to_vector();
    for (const ir::Candidate& cand : graph.candidates)
      if (!active[size_t(&cand - graph.candidates.data())])
        c[size_t(cand.row) * 4 + size_t(cand.column)] = 0;
    return Var(Tensor::from_vector({5, 4}, c), true);
  }
  Var run(const sched::ActiveSet& active, const Var& coefficients) const {
    sched::RunOptions options{.training = true, .coefficients = {coefficients}};
    return sched::run(graph, params, sched::make_plan(graph, active), images, options);
  }
};

int64_t forward_count(OpKind k) { return kernel_counts().forward[size_t(k)]; }
int64_t backward_count(OpKind k) { return kernel_counts().backward[size_t(k)]; }

sched::ActiveSet without(const ir::Graph& g, Candidate op) {
  sched::ActiveSet active = sched::all_active(g);
  for (size_t i = 0; i < g.candidates.size(); ++i)
    if (g.candidates[i].op == op) active[i] = 0;
  return active;
}
}  // namespace

TEST_CASE("scheduler: inactive candidates run no kernels, forward or backward") {
  Fixture f;
  REQUIRE(f.graph.candidates.size() == 5 * 4);
  // Dense: 1 stem conv + 2 preprocess convs + 5 sep_convs x 4 convs = 23 conv2d.
  reset_kernel_counts();
  Var dense = ops::sum(f.run(sched::all_active(f.graph), f.coef));
  dense.backward();
  CHECK(forward_count(OpKind::conv2d) == 23);
  CHECK(forward_count(OpKind::max_pool) == 5);
  CHECK(backward_count(OpKind::conv2d) == 23);
  // `none` is never computed, active or not; its coefficients' gradient <dy, 0> is 0.
  CHECK(forward_count(OpKind::zero) == 0);
  for (const ir::Candidate& c : f.graph.candidates)
    if (c.op == Candidate::none)
      CHECK(f.coef.grad().to_vector()[size_t(c.row) * 4 + size_t(c.column)] == 0.0f);

  reset_kernel_counts();
  Var sparse = ops::sum(f.run(without(f.graph, Candidate::sep_conv_3x3), f.coef));
  sparse.backward();
  CHECK(forward_count(OpKind::conv2d) == 3);
  CHECK(backward_count(OpKind::conv2d) == 3);
  CHECK(forward_count(OpKind::max_pool) == 5);
}

TEST_CASE("scheduler: weights of inactive candidates get no gradient") {
  Fixture f;
  const sched::ActiveSet active = without(f.graph, Candidate::sep_conv_3x3);
  for (const Var& p : f.params.weights()) const_cast<Var&>(p).zero_grad();
  ops::sum(f.run(active, f.coef)).backward();
  int inactive_weights = 0;
  for (size_t i = 0; i < f.graph.params.size(); ++i) {
    const ir::Parameter& p = f.graph.params[i];
    if (p.is_buffer) continue;
    const bool owned_by_inactive = p.candidate.valid() && !active[p.candidate.index()];
    inactive_weights += owned_by_inactive;
    INFO(p.name);
    CHECK(f.params.all()[i].has_grad() == !owned_by_inactive);
  }
  CHECK(inactive_weights == 5 * 4);  // 4 conv weights per sep_conv_3x3 (its BNs are not affine)
}

TEST_CASE("scheduler: the sparse result equals the dense one with inactive coefficients at 0") {
  Fixture f;
  const sched::ActiveSet active = without(f.graph, Candidate::sep_conv_3x3);
  const Var masked = f.masked_coef(active);
  const Var dense = f.run(sched::all_active(f.graph), masked);
  const Var sparse = f.run(active, masked);
  const std::vector<float> d = dense.value().to_vector(), s = sparse.value().to_vector();
  REQUIRE(d.size() == s.size());
  for (size_t i = 0; i < d.size(); ++i) CHECK(s[i] == doctest::Approx(d[i]).epsilon(1e-5));

  // Architecture gradients agree too, except at the inactive columns (dense computes
  // <dy, o_k> there; sparse never ran o_k, so it has no such gradient).
  const Var dense_coef = f.masked_coef(active);
  ops::sum(f.run(sched::all_active(f.graph), dense_coef)).backward();
  const Var sparse_coef = f.masked_coef(active);
  ops::sum(f.run(active, sparse_coef)).backward();
  const std::vector<float> gd = dense_coef.grad().to_vector(), gs = sparse_coef.grad().to_vector();
  for (const ir::Candidate& c : f.graph.candidates) {
    if (c.op == Candidate::sep_conv_3x3) continue;
    const size_t at = size_t(c.row) * 4 + size_t(c.column);
    CHECK(gs[at] == doctest::Approx(gd[at]).epsilon(1e-4));
  }
}

TEST_CASE("scheduler: nodes that do not reach the logits are not computed") {
  // With every candidate into node 'a' inactive, 'a' is absent: the candidates on the edge
  // a -> b are skipped too (they would compute zero), and 'a' enters the concat as zeros.
  Fixture f;
  sched::ActiveSet active = sched::all_active(f.graph);
  for (size_t i = 0; i < f.graph.candidates.size(); ++i)
    if (f.graph.candidates[i].row < 2) active[i] = 0;  // rows 0, 1: the edges into 'a'
  const sched::Plan plan = sched::make_plan(f.graph, active);
  int64_t from_a = 0;
  for (ir::NodeId id : plan.order) {
    const ir::Node& n = f.graph.node(id);
    if (n.candidate.valid()) CHECK(f.graph.candidate(n.candidate).row != 4);  // row 4: a -> b
    from_a += n.label.find(".a.") != std::string::npos;
  }
  CHECK(from_a == 0);
  CHECK(plan.skipped_nodes > 0);
  const Var logits = f.run(active, f.coef);
  CHECK(logits.shape() == Shape{2, 3});
}

TEST_CASE("scheduler: a ReLU read by several candidates is one node, run once, skipped unread") {
  Fixture f;
  // The first ReLU of every sep_conv reads its edge's input: c_k-2 and c_k-1 feed two edges
  // each, so their ReLUs are shared nodes owned by no candidate; a feeds one. The two
  // preprocessings read the same stem output and, in a search network, share its ReLU
  // too (a fixed network keeps one per preprocessing for the ONNX cell export: compile's
  // tests); that one belongs to the network, not to candidates.
  std::vector<std::string> shared;
  int64_t relus = 0;
  for (const ir::Node& n : f.graph.nodes) {
    if (n.op != OpKind::relu) continue;
    ++relus;
    if (!n.absent_with_input) continue;
    CHECK_FALSE(n.candidate.valid());
    shared.push_back(n.label);
  }
  CHECK(relus == 1 + 3 + 5);  // preprocessing, first ReLUs per edge input, second ReLUs
  CHECK(shared == std::vector<std::string>{"cells.0.relu_of.pre0.bn", "cells.0.relu_of.pre1.bn"});

  reset_kernel_counts();
  ops::sum(f.run(sched::all_active(f.graph), f.coef)).backward();
  CHECK(forward_count(OpKind::relu) == 9);
  CHECK(backward_count(OpKind::relu) == 9);

  // No sep_conv active: no reader runs, so the shared ReLUs are not computed.
  reset_kernel_counts();
  ops::sum(f.run(without(f.graph, Candidate::sep_conv_3x3), f.coef)).backward();
  CHECK(forward_count(OpKind::relu) == 1);
  CHECK(backward_count(OpKind::relu) == 1);
}

TEST_CASE("scheduler: a shared ReLU whose input is absent is skipped like a candidate") {
  // In the DARTS cell n0 feeds three edges, so the four conv candidates of each read one
  // shared ReLU of n0. With every candidate into n0 of cell 0 inactive, n0 is absent: its
  // ReLU must not run on zeros (nor the candidates after it).
  const ir::Graph graph = spec::compile(spec::parse_file(darts_spec()), {.fold_conv_relus = false});
  sched::ActiveSet active = sched::all_active(graph);
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    const ir::Candidate& c = graph.candidates[i];
    if (c.cell == 0 && c.label.rfind("cells.0.n0.", 0) == 0) active[i] = 0;
  }
  int64_t shared_of_n0 = 0;
  for (const ir::Node& n : graph.nodes) shared_of_n0 += n.label == "cells.0.relu_of.n0.sum";
  REQUIRE(shared_of_n0 == 1);
  const sched::Plan plan = sched::make_plan(graph, active);
  for (ir::NodeId id : plan.order) {
    const std::string& label = graph.node(id).label;
    CHECK(label != "cells.0.relu_of.n0.sum");
    if (label.rfind("cells.0.n1.e2.", 0) == 0) FAIL("ran ", label, " on the absent n0");
  }
}

namespace {
// An active set of the tiny space by column per row (the selected op), the other
// candidates `others`.
sched::ActiveSet select_columns(const ir::Graph& graph, const std::vector<int32_t>& column,
                                uint8_t others) {
  sched::ActiveSet active(graph.candidates.size(), others);
  for (size_t i = 0; i < graph.candidates.size(); ++i)
    if (graph.candidates[i].column == column[size_t(graph.candidates[i].row)])
      active[i] = sched::kActive;
  return active;
}
bool has_value_of(const ir::Graph& graph, const sched::Plan& plan, const std::string& label) {
  for (const ir::Node& node : graph.nodes)
    if (node.label == label) return plan.given[node.outputs[0].index()] != 0;
  FAIL("no node ", label);
  return false;
}
}  // namespace

TEST_CASE(
    "scheduler: the forward-only cut runs the forward-only candidates on what the first run kept") {
  Fixture f;
  // a.e0 skip, a.e1 max_pool, b.e0 sep_conv, b.e1 skip, b.e2 max_pool (columns: none,
  // skip_connect, sep_conv_3x3, max_pool_3x3).
  const std::vector<int32_t> columns = {1, 3, 2, 1, 3};
  const sched::Plan first =
      sched::make_plan(f.graph, select_columns(f.graph, columns, sched::kInactive));
  const sched::Plan full =
      sched::make_plan(f.graph, select_columns(f.graph, columns, sched::kForwardOnly));
  const std::optional<sched::Plan> cut = sched::make_forward_only_plan(f.graph, full, first);
  REQUIRE(cut.has_value());
  std::vector<uint8_t> in_cut(f.graph.nodes.size(), 0), produced(f.graph.values.size(), 0);
  for (ir::NodeId id : cut->order) {
    const ir::Node& n = f.graph.node(id);
    in_cut[size_t(id.index())] = 1;
    CAPTURE(n.label);
    if (n.candidate.valid())
      CHECK(full.active[n.candidate.index()] == sched::kForwardOnly);
    else  // the node sums, and the ReLU of c_k-1 that only forward-only sep_convs read
      CHECK((n.label == "cells.0.a.sum" || n.label == "cells.0.b.sum" ||
             n.label == "cells.0.relu_of.pre1.bn"));
    // Whatever it reads, an earlier node of the cut computed or the first run kept.
    for (ir::ValueId in : n.inputs) {
      if (!in.valid() || f.graph.value(in).kind != ir::ValueKind::activation) continue;
      if (n.drops_absent_inputs && cut->absent[in.index()]) continue;  // a term left out
      CHECK((produced[in.index()] || cut->given[in.index()]));
    }
    for (ir::ValueId out : n.outputs) produced[out.index()] = 1;
  }
  for (ir::NodeId id : full.order) {
    const ir::Node& n = f.graph.node(id);
    if (n.candidate.valid() && full.active[n.candidate.index()] == sched::kForwardOnly)
      CHECK_MESSAGE(in_cut[size_t(id.index())], n.label);
  }
  // The first run computed c_k-2's ReLU (for b.e0's sep_conv) and a (read by b.e2's
  // forward-only candidates); the sums' outputs are given where a candidate reads them.
  CHECK(has_value_of(f.graph, *cut, "cells.0.relu_of.pre0.bn"));
  CHECK(has_value_of(f.graph, *cut, "cells.0.a.sum"));
  CHECK_FALSE(has_value_of(f.graph, *cut, "cells.0.b.sum"));
  CHECK_FALSE(has_value_of(f.graph, *cut, "cells.0.relu_of.pre1.bn"));
  CHECK(cut->seed_position.size() == cut->order.size());
}

TEST_CASE("scheduler: no forward-only cut where a read sum would be left with no term") {
  // DARTS cell 0: n0's candidates forward-only, so the first run lacks n0; n1 keeps one
  // active op on its edge from n0 and n2's candidates, forward-only, read n1. The full
  // run sums n1 from that op; the cut, leaving active terms out, would sum nothing.
  const ir::Graph graph = spec::compile(spec::parse_file(darts_spec()));
  auto active_set = [&](uint8_t n1_others) {
    sched::ActiveSet active = sched::all_active(graph);
    for (size_t i = 0; i < graph.candidates.size(); ++i) {
      const std::string& label = graph.candidates[i].label;
      if (label.rfind("cells.0.n0.", 0) == 0 || label.rfind("cells.0.n2.", 0) == 0)
        active[i] = sched::kForwardOnly;
      else if (label.rfind("cells.0.n1.", 0) == 0 && label != "cells.0.n1.e2.sep_conv_3x3")
        active[i] = n1_others;
    }
    return active;
  };
  auto first_of = [&](sched::ActiveSet a) {
    for (uint8_t& x : a)
      if (x == sched::kForwardOnly) x = sched::kInactive;
    return sched::make_plan(graph, a);
  };
  const sched::ActiveSet lone = active_set(sched::kInactive);
  CHECK_FALSE(sched::make_forward_only_plan(graph, sched::make_plan(graph, lone), first_of(lone))
                  .has_value());
  // With n1's other candidates forward-only, the cut sums those.
  const sched::ActiveSet with = active_set(sched::kForwardOnly);
  CHECK(sched::make_forward_only_plan(graph, sched::make_plan(graph, with), first_of(with))
            .has_value());
}

// NASP's second pass: a forward-only term with coefficient 0 gives its coefficient's
// gradient as soon as it exists (executor.cpp, EarlyDot) instead of in its sum's backward.
// Checked against <dy, term> over the terms a plain run kept (RunOptions::keep); a
// forward-only term whose coefficient is not 0 must stay in its sum.
TEST_CASE("scheduler: early coefficient gradients are <dy, term>, and non-zero terms stay summed") {
  Fixture f;
  // Node a: sep_conv and max_pool forward-only at coefficient 0, skip inactive (a
  // skip's term is the edge's input, which other nodes read too, so it is never early):
  // its sum gives zeros. Node b: e0 sep_conv, e1 skip, e2 max_pool active; the others
  // forward-only at 0 except e0's max_pool (0.3).
  const std::vector<int32_t> columns = {-1, -1, 2, 1, 3};
  sched::ActiveSet active = select_columns(f.graph, columns, sched::kForwardOnly);
  for (size_t i = 0; i < f.graph.candidates.size(); ++i)
    if (f.graph.candidates[i].row < 2 && f.graph.candidates[i].column == 1)
      active[i] = sched::kInactive;
  std::vector<float> hot(20, 0.0f);
  for (int r = 2; r < 5; ++r) hot[size_t(r) * 4 + size_t(columns[size_t(r)])] = 1.0f;
  hot[2 * 4 + 3] = 0.3f;
  const sched::Plan plan = sched::make_plan(f.graph, active);
  Rng rng(9);
  std::vector<Tensor> grads(f.graph.values.size());
  std::vector<uint8_t> terms(f.graph.values.size(), 0);
  std::vector<const ir::Node*> sums;
  for (ir::NodeId id : plan.order) {
    const ir::Node& n = f.graph.node(id);
    if (!std::holds_alternative<WeightedSumAttrs>(n.attrs)) continue;
    Shape s = f.graph.value(n.outputs[0]).shape;
    s[0] = 2;
    grads[n.outputs[0].index()] = normal_tensor(s, 0, 1, rng);
    for (size_t k = 0; k < n.input_candidates.size(); ++k)
      if (sched::input_summed(plan, n, k)) terms[n.inputs[k].index()] = 1;
    sums.push_back(&n);
  }
  REQUIRE(sums.size() == 2);

  // The reference: a plain run keeps every term; <dy, term> summed in double.
  std::vector<Var> kept(f.graph.values.size());
  Var coef(Tensor::from_vector({5, 4}, hot), true);
  sched::RunOptions plain{.training = true, .coefficients = {coef}};
  plain.keep = &kept;
  plain.keep_mask = &terms;
  std::vector<float> logits;
  {
    const NoGradGuard no_grad;
    logits = sched::run(f.graph, f.params, plan, f.images, plain).value().to_vector();
  }
  std::vector<double> expected(hot.size(), 0.0);
  for (const ir::Node* n : sums) {
    const auto& ws = std::get<WeightedSumAttrs>(n->attrs);
    const std::vector<float> g = grads[n->outputs[0].index()].to_vector();
    for (size_t k = 0; k < n->input_candidates.size(); ++k) {
      if (!sched::input_summed(plan, *n, k)) continue;
      const std::vector<float> x = kept[n->inputs[k].index()].value().to_vector();
      double dot = 0;
      for (size_t i = 0; i < x.size(); ++i) dot += double(g[i]) * double(x[i]);
      expected[size_t(ws.row_of(k)) * 4 + size_t(ws.columns[k])] += dot;
    }
  }

  sched::RunOptions hooked{.training = true, .coefficients = {coef}};
  hooked.weighted_sums.grads = &grads;
  reset_kernel_counts();
  {
    const NoGradGuard no_grad;
    CHECK(sched::run(f.graph, f.params, plan, f.images, hooked).value().to_vector() == logits);
  }
  // a's terms all went early, so only b's sum ran its backward (its active terms and
  // e0's max_pool at 0.3).
  CHECK(backward_count(OpKind::weighted_sum) == 1);
  REQUIRE(coef.has_grad());
  const std::vector<float> got = coef.grad().to_vector();
  for (size_t i = 0; i < hot.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-5));
    // Each entry with a term on a non-zero input: not `none`, not a's skips (inactive),
    // not b.e2's (it reads a, all zeros).
    if (i % 4 != 0 && i < 16 && !(i < 8 && i % 4 == 1)) CHECK(got[i] != 0.0f);
  }
}
