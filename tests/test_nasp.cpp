// NASP against its equations: the two proximal maps, the regulariser's gradient, the
// architecture step A <- prox_C2(A - lr * dF/dA_bar) with the gradient of the dense network
// at A_bar, and the sparse execution it buys (kernel counts, no gradient for unselected ops).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/nasp.h"
#include "engine/backends/backend.h"
#include "engine/data/token_batches.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/tiny_search.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

// `projection`: --nasp-projection (edge: one op on every edge; node: the kept edges only);
// `optimizer`: --nasp-optimizer; `passes`: --nasp-arch-passes.
struct Setup : testing::TinySearch {
  explicit Setup(const std::string& projection = "edge", const std::string& optimizer = "sgd",
                 const std::string& passes = "two")
      : TinySearch("nasp", [&](HyperValues& h) {
          h.set_choice("nasp-projection", projection);
          h.set_choice("nasp-optimizer", optimizer);
          h.set_choice("nasp-arch-passes", passes);
        }) {
    // A inside the box with distinct rows, so no step below is clipped.
    Rng rng(4);
    for (Var& a : arch.logits) a.value().copy_from(uniform_tensor(a.shape(), 0.3f, 0.7f, rng));
  }
};

// dL_val/dA_bar of the dense network: every candidate active and recorded, the one-hot
// coefficients a leaf, the weights frozen.
Tensor dense_gradient(Setup& s, const Tensor& hot) {
  Var coef(hot, true);
  StepContext ctx = s.context();
  s.arch.active = sched::all_active(s.graph);
  FreezeGuard freeze(s.sgd.params());
  forward_loss(ctx, s.val, {coef}, false).backward();
  return coef.grad().clone();
}

int64_t forward_count(OpKind k) { return kernel_counts().forward[size_t(k)]; }
int64_t backward_count(OpKind k) { return kernel_counts().backward[size_t(k)]; }

// conv2d nodes outside candidates, and inside the candidates marked in `which`.
int64_t conv_nodes(const ir::Graph& g, const sched::ActiveSet& which) {
  int64_t n = 0;
  for (const ir::Node& node : g.nodes)
    if (node.op == OpKind::conv2d && (!node.candidate.valid() || which[node.candidate.index()]))
      ++n;
  return n;
}
}  // namespace

TEST_CASE("nasp: prox onto C1 is the one-hot arg-max row, prox onto C2 clips into [0, 1]") {
  ArchState s;
  s.logits.emplace_back(Tensor::from_vector({3, 3}, {0.2f, 0.9f, 0.1f,   //
                                                     -0.5f, 1.7f, 1.7f,  // tie: lower column
                                                     0.3f, 0.3f, 0.31f}),
                        true);
  const std::vector<float> hot = one_hot_rows(s)[0].to_vector();
  CHECK(hot == std::vector<float>{0, 1, 0, 0, 1, 0, 0, 0, 1});
  project_box(s.logits);
  CHECK(s.logits[0].value().to_vector() ==
        std::vector<float>{0.2f, 0.9f, 0.1f, 0.0f, 1.0f, 1.0f, 0.3f, 0.3f, 0.31f});
  // The NASP start is the DARTS draw projected onto the box.
  Setup setup;
  const ArchState fresh = prepared_arch_state(find_algorithm("nasp"), setup.graph, setup.space, 1);
  const ArchState darts = initial_arch_state(setup.graph, setup.space.arch.init_std, 1);
  const std::vector<float> a = fresh.logits[0].value().to_vector();
  const std::vector<float> alpha = darts.logits[0].value().to_vector();
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == std::clamp(alpha[i], 0.0f, 1.0f));
}

TEST_CASE("nasp: the regulariser's gradient and the parameter shares from the IR") {
  Setup s;
  const std::vector<std::vector<double>> shares = parameter_shares(s.graph);
  REQUIRE(shares.size() == 1);
  // Columns: none, skip_connect, sep_conv_3x3, max_pool_3x3 (search BNs have no affine):
  // only sep_conv_3x3 owns weights.
  CHECK(shares[0] == std::vector<double>{0.0, 0.0, 1.0, 0.0});

  // R(A) = sum_k share_k ||A[:, k]||^2 with made-up shares; central differences.
  const std::vector<double> w = {0.1, 0.2, 0.3, 0.4};
  Rng rng(2);
  const Tensor a = uniform_tensor({5, 4}, 0, 1, rng);
  auto r = [&](const std::vector<float>& v) {
    double sum = 0;
    for (size_t i = 0; i < v.size(); ++i) sum += w[i % 4] * double(v[i]) * double(v[i]);
    return sum;
  };
  const float eta = 0.5f;
  const std::vector<float> g = regulariser_gradient(w, a, eta).to_vector();
  const std::vector<float> base = a.to_vector();
  for (size_t i = 0; i < base.size(); ++i) {
    std::vector<float> plus = base, minus = base;
    plus[i] += 1e-2f;
    minus[i] -= 1e-2f;
    const double fd = eta * (r(plus) - r(minus)) / (double(plus[i]) - double(minus[i]));
    CHECK(double(g[i]) == doctest::Approx(fd).epsilon(1e-4));
  }
}

TEST_CASE("nasp: the architecture step is A - lr * dL_val/dA_bar of the dense network at A_bar") {
  Setup s;
  const std::vector<float> before = s.arch.logits[0].value().to_vector();
  const Tensor hot = one_hot_rows(s.arch)[0];

  const std::vector<float> dense = dense_gradient(s, hot).to_vector();

  s.sgd.zero_grad();
  reset_kernel_counts();
  StepContext ctx = s.context();
  update_architecture_proximal(ctx);
  const std::vector<float> after = s.arch.logits[0].value().to_vector();
  const float lr = s.adam.lr();
  double largest = 0;
  for (float g : dense) largest = std::max(largest, double(std::abs(g)));
  REQUIRE(largest > 0);
  for (size_t i = 0; i < before.size(); ++i) {
    CAPTURE(i);
    CHECK(after[i] ==
          doctest::Approx(std::clamp(before[i] - lr * dense[i], 0.0f, 1.0f)).epsilon(1e-5));
  }
  // Every candidate ran forward once (the two passes: the selected network, then the other
  // candidates on the values the first pass kept); backward only through the selected ops,
  // and no weight received a gradient.
  const sched::ActiveSet selected = selection_active_set(s.graph, {hot}, sched::kInactive);
  CHECK(forward_count(OpKind::conv2d) == conv_nodes(s.graph, sched::all_active(s.graph)));
  CHECK(backward_count(OpKind::conv2d) <= conv_nodes(s.graph, selected));
  for (const Var& w : s.sgd.params()) CHECK_FALSE(w.has_grad());
  // A_bar is refreshed from the new A: the active set is its selection.
  CHECK(s.arch.active == selection_active_set(s.graph, one_hot_rows(s.arch), sched::kInactive));

  // With eta > 0 the step also subtracts lr * 2 eta share_k A_bar.
  Setup t;
  t.hyper.set_number("nasp-eta", 0.25);

  StepContext ctx2 = t.context();
  const std::vector<float> start = t.arch.logits[0].value().to_vector();
  update_architecture_proximal(ctx2);
  const std::vector<float> end = t.arch.logits[0].value().to_vector();
  const std::vector<float> h = hot.to_vector();
  for (size_t i = 0; i < start.size(); ++i) {
    const float reg = (i % 4 == 2) ? 2 * 0.25f * 1.0f * h[i] : 0.0f;  // sep_conv_3x3 share 1
    CHECK(end[i] ==
          doctest::Approx(std::clamp(start[i] - lr * (dense[i] + reg), 0.0f, 1.0f)).epsilon(1e-5));
  }
}

TEST_CASE("nasp: with --nasp-optimizer adam the same gradient goes through Adam, then the box") {
  Setup s("edge", "adam");
  const Tensor gradient = dense_gradient(s, one_hot_rows(s.arch)[0]);
  // The reference: a fresh Adam with the session's settings on a copy of A.
  Var copy(s.arch.logits[0].value().clone(), true);
  Adam reference({copy}, AdamOptions{.lr = 0.01f});
  copy.set_grad(gradient);
  reference.step();
  std::vector<float> expect = copy.value().to_vector();
  for (float& v : expect) v = std::clamp(v, 0.0f, 1.0f);

  StepContext ctx = s.context();
  update_architecture_proximal(ctx);
  const std::vector<float> got = s.arch.logits[0].value().to_vector();
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-5));
  CHECK(s.adam.step_count(0) == 1);
}

TEST_CASE("nasp: the weight step runs and trains only the selected op of each edge") {
  Setup s;
  StepContext ctx = s.context();
  update_architecture_proximal(ctx);
  const sched::ActiveSet selected = s.arch.active;
  // One active candidate per edge (row), the rest inactive.
  std::vector<int> per_row(5, 0);
  for (size_t i = 0; i < selected.size(); ++i) {
    CHECK((selected[i] == sched::kActive || selected[i] == sched::kInactive));
    per_row[size_t(s.graph.candidates[i].row)] += selected[i] == sched::kActive;
  }
  CHECK(per_row == std::vector<int>(5, 1));

  reset_kernel_counts();
  s.sgd.zero_grad();
  update_weights(ctx);
  CHECK(forward_count(OpKind::conv2d) == conv_nodes(s.graph, selected));
  CHECK(backward_count(OpKind::conv2d) <= conv_nodes(s.graph, selected));
  // Each edge's sum is left with its selected op at coefficient 1 and no architecture
  // gradient wanted: it passes that output through instead of copying it.
  CHECK(forward_count(OpKind::weighted_sum) == 0);
  CHECK(backward_count(OpKind::weighted_sum) == 0);
  int64_t trained = 0;
  for (size_t i = 0; i < s.graph.params.size(); ++i) {
    const ir::Parameter& p = s.graph.params[i];
    if (p.is_buffer || !p.candidate.valid()) continue;
    CAPTURE(p.name);
    CHECK(s.params.all()[i].has_grad() == (selected[p.candidate.index()] == sched::kActive));
    trained += s.params.all()[i].has_grad();
  }
  MESSAGE(trained, " candidate weight tensors trained this step");
}

// The authors' projection (the default): per node only the edges derivation keeps are
// one-hot, the others zero, so the network searched is the cell derived.
TEST_CASE("nasp: the node projection keeps each node's top-k edges, as derivation would") {
  Setup s("node");
  // Rows: a <- c_k-2 (0), a <- c_k-1 (1) | b <- c_k-2 (2), b <- c_k-1 (3), b <- a (4).
  // Columns: 0 none, 1 skip_connect, 2 sep_conv_3x3, 3 max_pool_3x3.
  s.arch.logits[0].value().copy_from(Tensor::from_vector(
      {5, 4}, {0.9f,  0.2f, 0.3f, 0.1f,   // a/e0: none strongest, best real op sep (0.3)
               0.1f,  0.6f, 0.2f, 0.1f,   // a/e1: skip (0.6)
               0.1f,  0.2f, 0.3f, 0.35f,  // b/e0: max_pool (0.35)
               0.95f, 0.3f, 0.1f, 0.2f,   // b/e1: none strongest, best real op skip (0.3): dropped
               0.1f,  0.1f, 0.8f, 0.1f}));  // b/e2: sep (0.8)
  const std::vector<float> hot = projected_rows(s.arch)[0].to_vector();
  CHECK(hot == std::vector<float>{0, 0, 1, 0,  //
                                  0, 1, 0, 0,  //
                                  0, 0, 0, 1,  //
                                  0, 0, 0, 0,  //
                                  0, 0, 1, 0});
  // The edge projection would select none on a/e0 and b/e1 and keep all five edges.
  CHECK(one_hot_rows(s.arch)[0].to_vector()[0] == 1.0f);
  // The same edges and ops as derivation from A.
  const Derived d = derive(s.space, s.graph, s.arch);
  CHECK(d.genotype ==
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('max_pool_3x3', 0), "
        "('sep_conv_3x3', 2)], normal_concat=[2, 3])");

  // The weight step runs exactly the kept ops: 4 candidates (the edge projection would run
  // one on each of the 5 edges).
  StepContext ctx = s.context();
  s.arch.active = selection_active_set(s.graph, {projected_rows(s.arch)[0]}, sched::kInactive);
  int active = 0;
  for (uint8_t a : s.arch.active) active += a == sched::kActive;
  CHECK(active == 4);
  reset_kernel_counts();
  update_weights(ctx);
  CHECK(forward_count(OpKind::conv2d) == conv_nodes(s.graph, s.arch.active));
  CHECK(forward_count(OpKind::max_pool) == 1);  // b/e0's; b/e1's ops do not run
}

TEST_CASE("nasp: the step at the node projection is A - lr * dL_val/dA_bar there") {
  Setup s("node");
  const std::vector<float> before = s.arch.logits[0].value().to_vector();
  const Tensor hot = projected_rows(s.arch)[0];
  const std::vector<float> dense = dense_gradient(s, hot).to_vector();
  StepContext ctx = s.context();
  update_architecture_proximal(ctx);
  const std::vector<float> after = s.arch.logits[0].value().to_vector();
  const float lr = s.adam.lr();
  for (size_t i = 0; i < before.size(); ++i) {
    CAPTURE(i);
    CHECK(after[i] ==
          doctest::Approx(std::clamp(before[i] - lr * dense[i], 0.0f, 1.0f)).epsilon(1e-5));
  }
  CHECK(s.arch.active == selection_active_set(s.graph, projected_rows(s.arch), sched::kInactive));
}

TEST_CASE("nasp: the defaults follow the authors' code, path weights are refused by name") {
  const HyperValues defaults = find_algorithm("nasp").default_hyperparameters();
  CHECK(defaults.choice("nasp-optimizer") == "adam");
  CHECK(defaults.choice("nasp-projection") == "node");
  // A run written before --nasp-projection existed projected every edge: it resumes so.
  spec::JsonValue old_config = spec::JsonValue::object();
  old_config.set("nasp_eta", 0.0);
  old_config.set("nasp_optimizer", "sgd");
  HyperValues old = find_algorithm("nasp").default_hyperparameters();
  old.read_json(old_config, "config.json");
  CHECK(old.choice("nasp-projection") == "edge");

  std::string agd = testing::kTinySpace;
  agd.replace(agd.find(", \"keep\": 2}"), 12, ", \"path_weights\": true}");
  const spec::Space space = spec::parse_string(agd, "agd.json");
  CHECK_THROWS_WITH_AS(
      prepared_arch_state(find_algorithm("nasp"), spec::compile(space), space, 1),
      doctest::Contains("agd.json:/cells/0/nodes/0: NASP projects every edge onto one op"), Error);
}

// The two passes are a memory schedule, not another algorithm: the same step as the one
// pass (A, the batch norms' running statistics, the val loss) with less memory at the
// architecture step's peak. `one` and `two` are set up alike (same seeds).
// A language model's val batch starts from `val_state` (undefined: zeros), and both
// passes must end in the same carried state.
void check_two_passes_take_one_pass_step(testing::TinySearch& one, testing::TinySearch& two,
                                         double tolerance, const Tensor& val_state = {}) {
  std::vector<std::vector<float>> start;
  for (const Var& a : one.arch.logits) start.push_back(a.value().to_vector());
  CachingAllocator& memory = backend_for(Device::cpu).allocator();
  size_t peak[2] = {0, 0};
  double loss[2] = {0, 0};
  std::vector<float> state_out[2];
  testing::TinySearch* setups[2] = {&one, &two};
  for (int i = 0; i < 2; ++i) {
    memory.reset_peak();
    const size_t base = memory.stats().in_use_bytes;
    StepContext ctx = setups[i]->context();
    if (val_state.defined()) ctx.val_state = val_state;
    update_architecture_proximal(ctx);
    peak[i] = memory.stats().peak_bytes - base;
    loss[i] = ctx.metrics.val_loss;
    if (ctx.val_state_out.defined()) state_out[i] = ctx.val_state_out.to_vector();
    CHECK(ctx.metrics.val_count == one.val.labels.numel());  // the loss is counted once
  }
  CHECK(loss[1] == loss[0]);
  CHECK(state_out[1] == state_out[0]);
  if (val_state.defined()) CHECK(!state_out[0].empty());
  // The steps A moved, compared against the largest of the group's one-pass step: A itself
  // (~0.5) would hide a step of ~1e-5 under a relative tolerance.
  for (size_t g = 0; g < one.arch.logits.size(); ++g) {
    CAPTURE(g);
    const std::vector<float> a1 = one.arch.logits[g].value().to_vector();
    const std::vector<float> a2 = two.arch.logits[g].value().to_vector();
    REQUIRE(a1.size() == a2.size());
    double largest = 0, worst = 0;
    for (size_t i = 0; i < a1.size(); ++i) {
      largest = std::max(largest, std::fabs(double(a1[i]) - start[g][i]));
      worst = std::max(worst, std::fabs(double(a2[i]) - double(a1[i])));
    }
    CHECK(largest > 0);
    CHECK(worst <= tolerance * largest);
    MESSAGE("group ", g, ": largest step ", largest, ", largest difference ", worst);
  }
  // Running statistics: updated once, by the same batch statistics.
  for (size_t p = 0; p < one.params.all().size(); ++p) {
    const Var& x = one.params.all()[p];
    if (x.requires_grad()) continue;  // weights: untouched by an architecture step
    CAPTURE(x.name());
    CHECK(x.value().to_vector() == two.params.all()[p].value().to_vector());
  }
  CHECK(two.arch.active == one.arch.active);
  CHECK(peak[1] < peak[0]);
  MESSAGE("peak bytes one pass ", peak[0], ", two passes ", peak[1]);
}

TEST_CASE("nasp: --nasp-arch-passes two takes one's step with a lower peak") {
  for (const std::string projection : {"node", "edge"}) {
    CAPTURE(projection);
    Setup one(projection, "adam", "one"), two(projection, "adam", "two");
    check_two_passes_take_one_pass_step(one, two, 1e-6);
  }
}

// The DARTS network (examples/spaces/darts_cnn_small.json): three normal and two reduction
// cells share each A, so a row's gradient adds up contributions of several cells, in another
// order with two passes than with one (float rounding only).
TEST_CASE("nasp: two passes take one's step on the DARTS network, cells sharing A") {
  std::ifstream in(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/darts_cnn_small.json");
  REQUIRE(in.good());
  const std::string spec((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto setup = [&](const std::string& passes) {
    // sgd: the step is linear in the gradient (Adam's first step is its sign, which
    // rounding could flip where a gradient is ~0).
    auto s = std::make_unique<testing::TinySearch>(
        "nasp",
        [&](HyperValues& h) {
          h.set_choice("nasp-optimizer", "sgd");
          h.set_choice("nasp-arch-passes", passes);
        },
        spec);
    s->train = testing::random_batch(4, 1, 28, 10, 1);
    s->val = testing::random_batch(4, 1, 28, 10, 2);
    return s;
  };
  auto one = setup("one"), two = setup("two");
  REQUIRE(one->arch.logits.size() == 2);
  check_two_passes_take_one_pass_step(*one, *two, 1e-6);
}

// A recurrent cell (a language model's search space, DARTS RNN style: each node one edge
// from s0 or an earlier node, among activations): the weighted sums sit inside the cell,
// which runs once per token, and the val batch starts from a carried hidden state. Each
// edge has its own sum there: at the node projection a dropped edge's sum is not in pass
// 1, and pass 2 takes its gradient from the node's add of its edges (had the step fallen
// back to one pass, the peaks would be equal, which the check refuses).
TEST_CASE("nasp: two passes take one's step on a recurrent cell, the carried state included") {
  const std::string spec = R"({"format": 1, "name": "lm",
    "op_sets": {"rnn": ["tanh", "relu", "sigmoid", "identity"]},
    "cells": [{"name": "rnn", "kind": "recurrent", "steps": 3, "inputs": ["s0"],
      "nodes": [{"name": "n1", "from": ["s0"], "ops": "rnn", "keep": 1},
                {"name": "n2", "from": ["s0", "n1"], "ops": "rnn", "keep": 1},
                {"name": "n3", "from": ["s0", "n1", "n2"], "ops": "rnn", "keep": 1}],
      "output": {"concat": ["n1", "n2", "n3"]}}],
    "network": {"input": [5], "classes": 7, "body": [{"cell": "rnn", "channels": 6}],
                "head": [{"op": "linear"}]}})";
  std::vector<int32_t> tokens(64);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t((i * 5 + i / 3) % 7);
  auto setup = [&](const std::string& projection, const std::string& passes) {
    auto s = std::make_unique<testing::TinySearch>(
        "nasp",
        [&](HyperValues& h) {
          h.set_choice("nasp-projection", projection);
          h.set_choice("nasp-optimizer", "sgd");
          h.set_choice("nasp-arch-passes", passes);
        },
        spec);
    TokenBatches windows(tokens, TokenBatchOptions{.streams = 3, .steps = 5}, "test");
    s->train = windows.next();
    s->val = windows.next();
    // This small network's gradients are ~1e-5: a step large enough to compare (~1e-2)
    // rather than lost in the rounding of A (~0.5).
    s->adam.set_lr(1000.0f);
    Rng rng(4);
    for (Var& a : s->arch.logits) a.value().copy_from(uniform_tensor(a.shape(), 0.3f, 0.7f, rng));
    return s;
  };
  for (const std::string projection : {"node", "edge"}) {
    CAPTURE(projection);
    auto one = setup(projection, "one"), two = setup(projection, "two");
    REQUIRE(one->graph.state_in.valid());
    Rng rng(5);
    check_two_passes_take_one_pass_step(*one, *two, 1e-6, uniform_tensor({3, 6}, -0.5f, 0.5f, rng));
  }
}
