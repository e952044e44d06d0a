// NASP against its equations: the two proximal maps, the regulariser's gradient, the
// architecture step A <- prox_C2(A - lr * dF/dA_bar) with the gradient of the dense network
// at A_bar, and the sparse execution it buys (kernel counts, no gradient for unselected ops).
#include <algorithm>
#include <cmath>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/nasp.h"
#include "engine/backends/backend.h"
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

struct Setup : testing::TinySearch {
  Setup() : TinySearch("nasp") {
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
  // Every candidate ran forward; backward only through the selected ops, and no weight
  // received a gradient.
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
  Setup s;
  const Tensor gradient = dense_gradient(s, one_hot_rows(s.arch)[0]);
  // The reference: a fresh Adam with the session's settings on a copy of A.
  Var copy(s.arch.logits[0].value().clone(), true);
  Adam reference({copy}, AdamOptions{.lr = 0.01f});
  copy.set_grad(gradient);
  reference.step();
  std::vector<float> expect = copy.value().to_vector();
  for (float& v : expect) v = std::clamp(v, 0.0f, 1.0f);

  s.hyper.set_choice("nasp-optimizer", "adam");
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
