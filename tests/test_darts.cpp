// DARTS against its equations on a network small enough to differentiate numerically.
#include <cmath>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/darts.h"
#include "algorithms/milenas.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/random_batch.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {
// Smooth in every parameter (no ReLU: inputs are not preprocessed, and the candidates are
// identity, pooling + BN and zero), so finite differences of the unrolled loss are exact
// up to truncation; BN and softmax keep it nonlinear.
const char* const kSpace = R"({
  "format": 1, "name": "darts_tiny",
  "op_sets": {"s": ["none", "skip_connect", "avg_pool_3x3"]},
  "cells": [{
    "name": "normal", "inputs": ["c_k-2", "c_k-1"], "preprocess": "none",
    "nodes": [
      {"name": "a", "from": ["c_k-2", "c_k-1"], "ops": "s"},
      {"name": "b", "from": ["c_k-1", "a"], "ops": "s"}
    ],
    "output": {"concat": ["a", "b"]}
  }],
  "network": {
    "input": [1, 6, 6], "classes": 3,
    "stem": [{"op": "conv_3x3", "channels": 3}, {"op": "batch_norm"}],
    "body": [{"cell": "normal", "channels": 3}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";

Batch make_batch(uint64_t seed) { return testing::random_batch(6, 1, 6, 3, seed); }

struct Setup {
  ir::Graph graph = spec::compile(spec::parse_string(kSpace, "darts_tiny.json"));
  ir::ParameterStore params{graph, 3};
  ArchState arch = initial_arch_state(graph, 0.5, 9);  // large init: a non-uniform softmax
  Sgd sgd{params.weights(), SgdOptions{.lr = 0.2f, .momentum = 0.9f, .weight_decay = 3e-4f}};
  Adam adam{arch.logits, AdamOptions{}};
  Batch train = make_batch(1), val = make_batch(2);

  HyperValues hyper;  // DARTS has no hyperparameters of its own
  StepContext context() { return StepContext(graph, params, arch, sgd, adam, train, val, hyper); }
};

// f(alpha) = L_val(w - xi * (momentum * buf + dL_train/dw(w, alpha) + wd * w), alpha).
double unrolled_val_loss(Setup& s) {
  StepContext ctx = s.context();
  std::vector<Tensor> backup;
  for (const Var& w : s.sgd.params()) backup.push_back(w.value().clone());
  s.sgd.zero_grad();
  std::vector<Var> coef;  // without gradient: alpha is only an input of f here
  {
    NoGradGuard none;
    coef = softmax_coefficients(s.arch);
  }
  forward_loss(ctx, s.train, coef, true).backward();
  const SgdOptions& o = s.sgd.options();
  for (size_t i = 0; i < s.sgd.params().size(); ++i) {
    const Var& w = s.sgd.params()[i];
    float* p = w.value().data();
    const float* g = w.grad().data();
    const float* m = s.sgd.momentum_buffer(i).data();
    for (int64_t e = 0; e < w.value().numel(); ++e)
      p[e] -= o.lr * (o.momentum * m[e] + g[e] + o.weight_decay * p[e]);
  }
  s.sgd.zero_grad();
  double loss;
  {
    NoGradGuard none;
    loss = double(forward_loss(ctx, s.val, softmax_coefficients(s.arch), false).value().item());
  }
  for (size_t i = 0; i < backup.size(); ++i) s.sgd.params()[i].value().copy_from(backup[i]);
  return loss;
}
}  // namespace

TEST_CASE("darts: the second-order gradient is the derivative of the unrolled validation loss") {
  Setup s;
  // One weight step first, so the momentum buffers are non-zero and enter w'.
  {
    StepContext ctx = s.context();
    update_weights(ctx);
  }
  StepContext ctx = s.context();
  second_order_gradient(ctx);
  std::vector<float> analytic;
  for (const Var& l : s.arch.logits) {
    const std::vector<float> g = l.grad().to_vector();
    analytic.insert(analytic.end(), g.begin(), g.end());
  }
  // First-order gradient, to show the second-order term is large enough to matter.
  StepContext ctx1 = s.context();
  for (Var& l : s.arch.logits) l.zero_grad();
  forward_loss(ctx1, s.val, softmax_coefficients(s.arch), false).backward();
  std::vector<float> first;
  for (const Var& l : s.arch.logits) {
    const std::vector<float> g = l.grad().to_vector();
    first.insert(first.end(), g.begin(), g.end());
  }

  const float eps = 1e-2f;  // f is smooth (see kSpace); truncation ~ eps^2
  double max_err = 0, max_first_err = 0, max_grad = 0;
  size_t at = 0;
  for (Var& l : s.arch.logits) {
    for (int64_t e = 0; e < l.value().numel(); ++e, ++at) {
      float* p = l.value().data() + e;
      const float saved = *p;
      *p = saved + eps;
      const double up = unrolled_val_loss(s);
      *p = saved - eps;
      const double down = unrolled_val_loss(s);
      *p = saved;
      const double numeric = (up - down) / (2.0 * eps);
      max_err = std::max(max_err, std::fabs(numeric - analytic[at]));
      max_first_err = std::max(max_first_err, std::fabs(numeric - first[at]));
      max_grad = std::max(max_grad, std::fabs(numeric));
    }
  }
  INFO("max |grad| " << max_grad << ", second-order error " << max_err << ", first-order error "
                     << max_first_err);
  CHECK(max_grad > 1e-3);
  // Measured: error ~5e-6 on gradients ~3e-2 (eps from 5e-3 to 5e-2 alike), while the
  // first-order gradient is off by ~1.6e-2. The bound leaves a 6x margin for float32
  // rounding and still fails if the Hessian-vector term is wrong or missing.
  CHECK(max_err < 1e-3 * max_grad);
  CHECK(max_first_err > 100 * max_err);
}

TEST_CASE(
    "darts: the architecture step forms no weight gradients, the weight step none for alpha") {
  Setup s;
  StepContext ctx = s.context();
  const std::vector<float> w0 = s.params.weights()[0].value().to_vector();
  update_architecture_first_order(ctx);
  for (const Var& w : s.params.weights()) CHECK_FALSE(w.has_grad());
  for (const Var& l : s.arch.logits) CHECK(l.has_grad());
  CHECK(s.params.weights()[0].value().to_vector() == w0);  // weights untouched

  for (Var& l : s.arch.logits) l.zero_grad();
  const std::vector<float> a0 = s.arch.logits[0].value().to_vector();
  update_weights(ctx);
  for (const Var& l : s.arch.logits) CHECK_FALSE(l.has_grad());
  CHECK(s.arch.logits[0].value().to_vector() == a0);
  CHECK(ctx.metrics.train_count == 6);
  CHECK(ctx.metrics.val_count == 6);
}

TEST_CASE("darts: the first-order step moves alpha by Adam's first step against dL_val/dalpha") {
  Setup s;
  StepContext ctx = s.context();
  const std::vector<float> before = s.arch.logits[0].value().to_vector();
  update_architecture_first_order(ctx);
  const std::vector<float> g = s.arch.logits[0].grad().to_vector();
  const std::vector<float> after = s.arch.logits[0].value().to_vector();
  // Adam's first step with bias correction is lr * sign-like g_hat / (|g_hat| + eps), where
  // g_hat = g + wd * alpha.
  const AdamOptions o;
  for (size_t i = 0; i < before.size(); ++i) {
    const double gh = double(g[i]) + o.weight_decay * before[i];
    const double expect = before[i] - o.lr * gh / (std::fabs(gh) + o.eps);
    CHECK(after[i] == doctest::Approx(expect).epsilon(1e-4));
  }
}

// An independent reference for the first-order step: the central finite difference of
// L(w, alpha) on a batch, weights fixed. The pass must match the validation batch's
// derivative; the train batch's differs by far more than the tolerance, so a pass that used
// the wrong split fails.
std::vector<double> numeric_arch_grad(Setup& s, const Batch& batch, bool is_train) {
  const float eps = 1e-2f;
  std::vector<double> out;
  auto loss = [&] {
    NoGradGuard none;
    StepContext ctx = s.context();
    return double(forward_loss(ctx, batch, softmax_coefficients(s.arch), is_train).value().item());
  };
  for (Var& l : s.arch.logits)
    for (int64_t e = 0; e < l.value().numel(); ++e) {
      float* p = l.value().data() + e;
      const float saved = *p;
      *p = saved + eps;
      const double up = loss();
      *p = saved - eps;
      const double down = loss();
      *p = saved;
      out.push_back((up - down) / (2.0 * eps));
    }
  return out;
}

TEST_CASE("darts: the first-order gradient is dL_val/dalpha on the validation batch") {
  Setup s;
  const std::vector<double> on_val = numeric_arch_grad(s, s.val, false);
  const std::vector<double> on_train = numeric_arch_grad(s, s.train, true);
  // A plain SGD step of lr 1 on alpha exposes the gradient the pass formed.
  Sgd plain(s.arch.logits, SgdOptions{.lr = 1.0f, .momentum = 0.0f, .weight_decay = 0.0f});
  StepContext ctx(s.graph, s.params, s.arch, s.sgd, plain, s.train, s.val, s.hyper);
  std::vector<float> before;
  for (const Var& l : s.arch.logits) {
    const std::vector<float> v = l.value().to_vector();
    before.insert(before.end(), v.begin(), v.end());
  }
  update_architecture_first_order(ctx);
  double max_err = 0, max_split_gap = 0, max_grad = 0;
  size_t at = 0;
  for (const Var& l : s.arch.logits)
    for (float after : l.value().to_vector()) {
      const double pass = double(before[at]) - double(after);
      max_err = std::max(max_err, std::fabs(pass - on_val[at]));
      max_split_gap = std::max(max_split_gap, std::fabs(on_train[at] - on_val[at]));
      max_grad = std::max(max_grad, std::fabs(on_val[at]));
      ++at;
    }
  INFO("max |grad| " << max_grad << ", error " << max_err << ", train/val gap " << max_split_gap);
  // Measured: error 4.4e-6 (float32 rounding of the differences at eps 1e-2) on gradients up
  // to 8e-3, the two splits' gradients 1.4e-2 apart: the bound is 7x the error and 1/480 of
  // the gap, so the train batch's gradient cannot pass it.
  const double bound = 3e-5;
  CHECK(max_grad > 1e-3);
  CHECK(max_err < bound);
  CHECK(max_split_gap > 100 * bound);
  CHECK(ctx.metrics.val_count == 6);
  CHECK(ctx.metrics.train_count == 0);
}

TEST_CASE("darts: unknown algorithm names list the known ones") {
  CHECK_THROWS_WITH_AS(find_algorithm("dartz"), doctest::Contains("darts, darts2"), Error);
}

TEST_CASE("milenas: alpha moves by dL_val/dalpha + lambda * dL_train/dalpha") {
  Setup s;
  // Reference gradients, each on its own.
  auto arch_grad = [&](const Batch& batch, bool is_train) {
    StepContext ctx = s.context();
    FreezeGuard freeze(s.params.weights());
    for (Var& l : s.arch.logits) l.zero_grad();
    forward_loss(ctx, batch, softmax_coefficients(s.arch), is_train).backward();
    std::vector<float> g;
    for (const Var& l : s.arch.logits) {
      const std::vector<float> v = l.grad().to_vector();
      g.insert(g.end(), v.begin(), v.end());
    }
    return g;
  };
  const std::vector<float> g_val = arch_grad(s.val, false);
  const std::vector<float> g_train = arch_grad(s.train, true);

  // A plain SGD step of lr 1 on alpha exposes the gradient the pass formed.
  Sgd plain(s.arch.logits, SgdOptions{.lr = 1.0f, .momentum = 0.0f, .weight_decay = 0.0f});
  HyperValues hyper = find_algorithm("milenas").default_hyperparameters();
  hyper.set_number("milenas-lambda", 0.5);
  StepContext ctx(s.graph, s.params, s.arch, s.sgd, plain, s.train, s.val, hyper);
  std::vector<float> before;
  for (const Var& l : s.arch.logits) {
    const std::vector<float> v = l.value().to_vector();
    before.insert(before.end(), v.begin(), v.end());
  }
  update_architecture_mixed_level(ctx);
  size_t at = 0;
  for (const Var& l : s.arch.logits)
    for (float after : l.value().to_vector()) {
      const double expect = double(g_val[at]) + 0.5 * double(g_train[at]);
      CHECK(double(before[at] - after) == doctest::Approx(expect).epsilon(1e-4));
      ++at;
    }
  for (const Var& w : s.params.weights()) CHECK_FALSE(w.has_grad());
  CHECK(ctx.metrics.val_count == 6);
  CHECK(ctx.metrics.train_count == 0);  // the weight pass reports the train loss
  CHECK(find_algorithm("milenas").passes().size() == 2);
}
