// Recurrent language models compiled by unrolling (spec/compile_recurrent.cpp): one time
// step against a reference worked in double, the gradient of a small unrolled network
// through the carried state against finite differences, the shipped space and DARTS_V2's
// cell compiled, sparse execution (kernel counts) and the variational dropout's shared masks.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/derive.h"
#include "engine/backends/backend.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/builder.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {
// One fixed node n1 = highway(s0, c, tanh(h)) after the initial state, H = 2, one token,
// a vocabulary of 3, no dropout.
const char* const kOneStep = R"({
  "format": 1, "name": "one_step",
  "cells": [{"name": "rnn", "kind": "recurrent", "steps": 1, "inputs": ["s0"],
             "nodes": [{"name": "n1", "edges": [{"from": "s0", "op": "tanh"}]}],
             "output": {"concat": ["n1"]}}],
  "network": {"input": [1], "classes": 3, "body": [{"cell": "rnn", "channels": 2}],
              "head": [{"op": "linear"}]}
})";

std::string source(const std::string& path) { return std::string(CELLGRAPH_SOURCE_DIR) + path; }

size_t param_index(const ir::Graph& g, const std::string& name) {
  for (size_t i = 0; i < g.params.size(); ++i)
    if (g.params[i].name == name) return i;
  FAIL("no parameter ", name);
  return 0;
}

void set_param(const ir::Graph& g, const ir::ParameterStore& p, const std::string& name,
               const std::vector<float>& values) {
  const size_t i = param_index(g, name);
  p.all()[i].value().copy_from(Tensor::from_vector(g.params[i].shape, values));
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// y = W x for a row-major [rows, cols] W.
std::vector<double> product(const std::vector<float>& w, const std::vector<double>& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  std::vector<double> y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < cols; ++k) y[r] += double(w[r * cols + k]) * x[k];
  return y;
}

// Softmax of each row of a [rows, cols] logit matrix, as the search algorithms bind them.
Var softmax_rows(const Tensor& logits) { return ops::softmax(Var(logits)); }

int64_t forward_count(OpKind k) { return kernel_counts().forward[size_t(k)]; }
int64_t backward_count(OpKind k) { return kernel_counts().backward[size_t(k)]; }
}  // namespace

TEST_CASE("recurrent network: one time step matches the DARTS cell worked in double") {
  const spec::Space space = spec::parse_string(kOneStep, "one_step.json");
  const ir::Graph g = spec::compile(space);
  CHECK(g.value(g.input).shape == Shape{1, 1});
  CHECK(g.value(g.logits).shape == Shape{1, 1, 3});
  CHECK(g.value(g.state_in).shape == Shape{1, 2});
  CHECK(g.value(g.state_out).shape == Shape{1, 2});
  const ir::ParameterStore p(g, 1);
  const std::vector<float> embedding{0.5f, -1.0f, 0.25f, 0.75f, -0.5f, 0.125f};  // [V=3, H=2]
  const std::vector<float> w0{0.5f,  -0.25f, 1.0f, 0.0f,  0.25f,  0.5f,   -0.5f, 1.0f,
                              -1.0f, 0.5f,   0.0f, 0.75f, 0.125f, -0.75f, 0.5f,  0.25f};  // [4, 4]
  const std::vector<float> w1{1.0f, -0.5f, 0.25f, 0.5f, -0.75f, 1.0f, 0.5f, 0.125f};      // [4, 2]
  const std::vector<float> bias{0.1f, -0.2f, 0.3f};
  set_param(g, p, "encoder.weight", embedding);
  set_param(g, p, "cells.0.w0", w0);
  set_param(g, p, "cells.0.n1.weight", w1);
  set_param(g, p, "decoder.bias", bias);

  const std::vector<double> h_prev{0.5, -0.25};
  const Var tokens(Tensor::from_vector({1, 1}, {2}));
  sched::RunOptions options{.training = true};
  options.state = Var(Tensor::from_vector({1, 2}, {float(h_prev[0]), float(h_prev[1])}));
  const sched::RunOutputs out =
      sched::run_outputs(g, p, sched::make_plan(g, sched::all_active(g)), tokens, options);

  // s0 = h + sigmoid(c0) (tanh(h0) - h), [c0, h0] = W0 [x, h]; n1 likewise from s0 and W1.
  const std::vector<double> xh{embedding[4], embedding[5], h_prev[0], h_prev[1]};
  const std::vector<double> ch0 = product(w0, xh);
  std::vector<double> s0(2), s1(2);
  for (size_t i = 0; i < 2; ++i)
    s0[i] = h_prev[i] + sigmoid(ch0[i]) * (std::tanh(ch0[2 + i]) - h_prev[i]);
  const std::vector<double> ch1 = product(w1, s0);
  for (size_t i = 0; i < 2; ++i) s1[i] = s0[i] + sigmoid(ch1[i]) * (std::tanh(ch1[2 + i]) - s0[i]);
  std::vector<double> logits = product(embedding, s1);  // tied decoder
  for (size_t v = 0; v < 3; ++v) logits[v] += bias[v];

  const std::vector<float> state = out.state.value().to_vector(),
                           got = out.logits.value().to_vector();
  REQUIRE(state.size() == 2);
  REQUIRE(got.size() == 3);
  for (size_t i = 0; i < 2; ++i) CHECK(state[i] == doctest::Approx(s1[i]).epsilon(1e-5));
  for (size_t v = 0; v < 3; ++v) CHECK(got[v] == doctest::Approx(logits[v]).epsilon(1e-5));
  // No state given: zeros.
  const sched::RunOutputs zero_state = sched::run_outputs(
      g, p, sched::make_plan(g, sched::all_active(g)), tokens, sched::RunOptions{});
  CHECK(zero_state.state.value().to_vector() != state);
}

// L = <logits, R> + <state_out, Q> of the tiny search RNN (T = 3, H = 3, batch 4, every
// dropout on with a fixed seed, so the masks are the same in every evaluation); the analytic
// gradients of the carried state, W0, a node matrix, the embedding and the architecture
// coefficients against central differences. The relu candidates are inactive, so L is smooth
// (BN on batch statistics, sigmoid, tanh, the highway; no kink a difference could straddle)
// and the op harness's tolerances apply: eps 1e-2, atol 1e-3, rtol 1e-2.
TEST_CASE("recurrent network: gradients through the unrolled steps and the carried state") {
  const ir::Graph g = spec::compile(spec::parse_string(testing::kTinyRnnSpace, "tiny_rnn.json"));
  const ir::ParameterStore p(g, 3);
  Rng rng(9);
  const Var tokens(Tensor::from_vector({4, 3}, {0, 1, 4, 2, 2, 3, 1, 0, 4, 3, 3, 1}));
  const Tensor r = uniform_tensor({4, 3, 5}, -1, 1, rng), q = uniform_tensor({4, 3}, -1, 1, rng);
  const Var state(uniform_tensor({4, 3}, -0.5f, 0.5f, rng), true);
  const Var arch(uniform_tensor({3, 5}, -1, 1, rng), true);
  sched::ActiveSet smooth = sched::all_active(g);
  for (size_t i = 0; i < g.candidates.size(); ++i)
    smooth[i] = g.candidates[i].op != Candidate::rnn_relu;
  const sched::Plan plan = sched::make_plan(g, smooth);
  auto loss = [&]() {
    sched::RunOptions o{.training = true, .dropout_seed = 17};
    o.coefficients = {ops::softmax(arch)};
    o.state = state;
    const sched::RunOutputs out = sched::run_outputs(g, p, plan, tokens, o);
    return ops::add(ops::sum(ops::mul(out.logits, Var(r))), ops::sum(ops::mul(out.state, Var(q))));
  };
  for (const Var& w : p.weights()) const_cast<Var&>(w).zero_grad();
  loss().backward();

  struct Checked {
    std::string what;
    Var var;
  };
  std::vector<Checked> checked{{"state", state}, {"arch", arch}};
  for (const char* name : {"cells.0.w0", "cells.0.n2.weight", "encoder.weight", "decoder.bias"})
    checked.push_back({name, p.all()[param_index(g, name)]});
  const float eps = 1e-2f;
  int compared = 0;
  for (const Checked& c : checked) {
    REQUIRE_MESSAGE(c.var.has_grad(), c.what);
    const std::vector<float> analytic = c.var.grad().to_vector();
    float* data = c.var.value().data();
    for (size_t i = 0; i < analytic.size(); i += 3) {
      const float keep = data[i];
      data[i] = keep + eps;
      const double plus = loss().value().item();
      data[i] = keep - eps;
      const double minus = loss().value().item();
      data[i] = keep;
      const double numeric = (plus - minus) / (2 * eps);
      INFO(c.what, "[", i, "]: analytic ", analytic[i], " numeric ", numeric);
      CHECK(std::fabs(analytic[i] - numeric) <= 1e-3 + 1e-2 * std::fabs(numeric));
      ++compared;
    }
  }
  CHECK(compared > 20);
  // The carried state reaches the loss through all three steps, not only the first.
  CHECK(state.grad().to_vector() != std::vector<float>(12, 0.0f));
}

TEST_CASE("recurrent network: the shipped space and DARTS_V2's cell compile") {
  const spec::Space space = spec::parse_file(source("/examples/spaces/darts_rnn.json"));
  const ir::Graph g = spec::compile(space);
  const int64_t t = space.network.sequence_length, h = space.network.body[0].channels,
                v = space.network.classes;
  CHECK(g.value(g.input).shape == Shape{1, t});
  CHECK(g.value(g.logits).shape == Shape{1, t, v});
  CHECK(g.value(g.state_out).shape == Shape{1, h});
  // 36 edges (1 + 2 + ... + 8) of 5 ops, in one group; every time step reads the same rows.
  REQUIRE(g.arch_groups.size() == 1);
  CHECK(g.arch_groups[0].rows == 36);
  CHECK(g.candidates.size() == 36 * 5);
  CHECK(g.mixed_edges.size() == 36);
  // Embedding (tied decoder) + decoder bias + W0 [2H, 2H] + 8 node matrices [2H, H].
  CHECK(g.weight_count() == v * h + v + 4 * h * h + 8 * 2 * h * h);
  // Per step: W0 (2H x 2H), 36 edge products (H x 2H); the decoder (H x V) per step.
  CHECK(g.macs() == t * (4 * h * h + 36 * 2 * h * h + h * v));
  int highways = 0;
  for (const ir::Node& n : g.nodes) highways += n.op == OpKind::highway;
  CHECK(highways == t * (1 + 36 * 4));  // s0, and 4 computed ops per edge (none never runs)

  const spec::Space fixed = spec::parse_file(source("/examples/networks/darts_v2_rnn.json"));
  CHECK(fixed.is_fixed());
  const ir::Graph f = spec::compile(fixed);
  const int64_t ft = fixed.network.sequence_length, fh = fixed.network.body[0].channels,
                fv = fixed.network.classes;
  CHECK(f.candidates.empty());
  CHECK(f.arch_groups.empty());
  CHECK(f.weight_count() == fv * fh + fv + 4 * fh * fh + 8 * 2 * fh * fh);
  CHECK(f.macs() == ft * (4 * fh * fh + 8 * 2 * fh * fh + fh * fv));
  int bns = 0;
  for (const ir::Node& n : f.nodes) bns += n.op == OpKind::batch_norm;
  CHECK(bns == 0);  // DARTS' evaluation cell has no BN
}

TEST_CASE("recurrent network: inactive candidates run no kernels, forward or backward") {
  const ir::Graph g = spec::compile(spec::parse_string(testing::kTinyRnnSpace, "tiny_rnn.json"));
  const ir::ParameterStore p(g, 3);
  const Var tokens(Tensor::from_vector({2, 3}, {0, 1, 4, 2, 2, 3}));
  Rng rng(4);
  const Var arch = softmax_rows(uniform_tensor({3, 5}, -1, 1, rng));
  auto run = [&](const sched::ActiveSet& active) {
    reset_kernel_counts();
    sched::RunOptions o{.training = true, .coefficients = {arch}};
    ops::sum(sched::run(g, p, sched::make_plan(g, active), tokens, o)).backward();
  };
  // Dense, per step: s0's and 3 edges x 4 computed ops' highways; W0's and 3 edge products,
  // plus one decoder product; tanh in s0 and on each edge.
  run(sched::all_active(g));
  CHECK(forward_count(OpKind::highway) == 3 * (1 + 3 * 4));
  CHECK(backward_count(OpKind::highway) == 3 * (1 + 3 * 4));
  CHECK(forward_count(OpKind::linear) == 3 * 4 + 1);
  CHECK(forward_count(OpKind::tanh) == 3 * (1 + 3));
  CHECK(forward_count(OpKind::sigmoid) == 3 * 3);
  CHECK(forward_count(OpKind::zero) == 0);  // none never runs

  // Only identity active: no activation kernel but s0's tanh, one highway per edge.
  sched::ActiveSet only_identity(g.candidates.size(), 0);
  for (size_t i = 0; i < g.candidates.size(); ++i)
    only_identity[i] = g.candidates[i].op == Candidate::rnn_identity;
  run(only_identity);
  CHECK(forward_count(OpKind::highway) == 3 * (1 + 3));
  CHECK(backward_count(OpKind::highway) == 3 * (1 + 3));
  CHECK(forward_count(OpKind::tanh) == 3);
  CHECK(backward_count(OpKind::tanh) == 3);
  CHECK(forward_count(OpKind::sigmoid) == 0);
  CHECK(forward_count(OpKind::relu) == 0);

  // Edge n2 <- s0 with only `none` active: its product runs neither way.
  sched::ActiveSet edge_off = only_identity;
  for (size_t i = 0; i < g.candidates.size(); ++i)
    if (g.candidates[i].label.rfind("cells.0.n2.e0.", 0) == 0)
      edge_off[i] = g.candidates[i].op == Candidate::rnn_none;
  run(edge_off);
  CHECK(forward_count(OpKind::linear) == 3 * 3 + 1);
  CHECK(backward_count(OpKind::linear) == 3 * 3 + 1);
  CHECK(forward_count(OpKind::highway) == 3 * (1 + 2));
}

TEST_CASE("recurrent network: dropout nodes with one mask_key draw one mask") {
  ir::Graph g;
  ir::Builder b(g);
  g.input = b.input({1, 64});
  const ir::ValueId x = g.input;
  auto drop = [&](int32_t key, const char* label) {
    return b.op1(OpKind::dropout, DropoutAttrs{.p = 0.5f, .mask_key = key}, {x}, label);
  };
  g.logits = b.op1(OpKind::concat, ConcatAttrs{},
                   {drop(3, "a"), drop(3, "b"), drop(0, "c"), drop(0, "d"), drop(4, "e")}, "all");
  const ir::ParameterStore p(g, 1);
  const Var ones(Tensor::full({2, 64}, 1.0f));
  auto parts = [&](uint64_t seed) {
    sched::RunOptions o{.training = true, .dropout_seed = seed};
    const std::vector<float> all =
        sched::run(g, p, sched::make_plan(g, sched::all_active(g)), ones, o).value().to_vector();
    std::vector<std::vector<float>> out(5);
    for (size_t n = 0; n < 2; ++n)
      for (size_t k = 0; k < 5; ++k)
        out[k].insert(out[k].end(), all.begin() + long(n * 320 + k * 64),
                      all.begin() + long(n * 320 + (k + 1) * 64));
    return out;
  };
  const auto one = parts(1);
  CHECK(one[0] == one[1]);  // same key
  CHECK(one[2] != one[3]);  // no key: each node its own mask
  CHECK(one[0] != one[4]);  // another key
  CHECK(one[0] != one[2]);
  const auto two = parts(2);
  CHECK(two[0] == two[1]);
  CHECK(two[0] != one[0]);  // a new mask each step (dropout seed)
}

TEST_CASE("recurrent network: derive keeps one edge per node, its best op but none, and compiles") {
  const spec::Space space = spec::parse_string(testing::kTinyRnnSpace, "tiny_rnn.json");
  const ir::Graph g = spec::compile(space);
  REQUIRE(g.arch_groups.size() == 1);
  // Rows n1/e0<-s0, n2/e0<-s0, n2/e1<-n1; columns none, tanh, relu, sigmoid, identity.
  // n1: none is strongest but never kept, relu next. n2: e1's best non-none (sigmoid 0.4)
  // beats e0's (tanh 0.3).
  const std::vector<std::vector<float>> weights{{0.5f, 0.1f, 0.2f, 0.1f, 0.1f,    //
                                                 0.3f, 0.3f, 0.2f, 0.1f, 0.1f,    //
                                                 0.1f, 0.2f, 0.1f, 0.4f, 0.2f}};  //
  const algorithms::Derived d = algorithms::derive_by_ranking(space, g, weights);
  REQUIRE(d.space.is_fixed());
  const spec::Cell& cell = d.space.cells.at(0);
  REQUIRE(cell.nodes.size() == 2);
  REQUIRE(cell.nodes[0].edges.size() == 1);
  CHECK(cell.nodes[0].edges[0].from == "s0");
  CHECK(cell.nodes[0].edges[0].ops == std::vector<std::string>{"relu"});
  REQUIRE(cell.nodes[1].edges.size() == 1);
  CHECK(cell.nodes[1].edges[0].from == "n1");
  CHECK(cell.nodes[1].edges[0].ops == std::vector<std::string>{"sigmoid"});
  // Written and read back, it compiles to the fixed cell: no candidates, no BN.
  const spec::Space again = spec::parse_string(spec::to_json(d.space), "derived.json");
  CHECK(again.network.dropout == space.network.dropout);
  const ir::Graph f = spec::compile(again);
  CHECK(f.candidates.empty());
  CHECK(f.value(f.logits).shape == Shape{1, 3, 5});
  for (const ir::Node& n : f.nodes) CHECK(n.op != OpKind::batch_norm);
}
