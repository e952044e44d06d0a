// SparseNAS against its equations: the proximal operators and HAPG / AdamHAPG on cases with
// known answers (the issue's numbers), the step on the tiny space against a reference built
// from the dense network's gradient and the prox written out entry by entry, the sparse
// execution it buys (kernel counts: zero entries run forward-only in the architecture
// passes and not at all in the weight step), mixed-path derivation, and the refusals.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/darts.h"
#include "algorithms/search_session.h"
#include "algorithms/sparsenas.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/optim/schedule.h"
#include "engine/sched/plan.h"
#include "engine/tensor/random.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/tiny_search.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

using testing::tiny_space_without_none;

void check_near(const std::vector<double>& got, const std::vector<double>& expect, double tol) {
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    if (expect[i] == 0.0)
      CHECK(got[i] == 0.0);  // the prox sets exact zeros: that is what switches an op off
    else
      CHECK(std::abs(got[i] - expect[i]) <= tol);
  }
}

int64_t forward_count(OpKind k) { return kernel_counts().forward[size_t(k)]; }
int64_t backward_count(OpKind k) { return kernel_counts().backward[size_t(k)]; }

// conv2d nodes a plan runs.
int64_t conv_nodes(const ir::Graph& g, const sched::Plan& plan) {
  int64_t n = 0;
  for (ir::NodeId id : plan.order) n += g.node(id).op == OpKind::conv2d;
  return n;
}

// conv2d nodes outside candidates, and inside the candidates whose entry of A is non-zero.
int64_t conv_nodes_of_nonzero(const ir::Graph& g, const ArchState& arch) {
  int64_t n = 0;
  for (const ir::Node& node : g.nodes) {
    if (node.op != OpKind::conv2d) continue;
    if (!node.candidate.valid()) {
      ++n;
      continue;
    }
    const ir::Candidate& c = g.candidate(node.candidate);
    const Tensor& a = arch.logits[c.arch.index()].value();
    n += a.data()[int64_t(c.row) * a.dim(1) + c.column] != 0.0f;
  }
  return n;
}

struct Setup : testing::TinySearch {
  Setup() : TinySearch("sparsenas", tiny_space_without_none()) {}

  int64_t cols() const { return arch.logits[0].shape()[1]; }
  // The flat index of (node, edge, op column) in the single group's A.
  int64_t entry(const std::string& node, int edge, int64_t column) const {
    const ir::MixedEdge* m = find_mixed_edge(graph, "normal", node, edge);
    REQUIRE(m != nullptr);
    return int64_t(m->row) * cols() + column;
  }
  // Node a's and node b's entries (its edges' rows, every op).
  std::vector<int64_t> node_entries(const std::string& node, int edges) const {
    std::vector<int64_t> out;
    for (int e = 0; e < edges; ++e)
      for (int64_t k = 0; k < cols(); ++k) out.push_back(entry(node, e, k));
    return out;
  }
  void set_a(const std::vector<float>& a) {
    arch.logits[0].value().copy_from(Tensor::from_vector(arch.logits[0].shape(), a));
    sparsenas_state(arch).x[0] = a;
    arch.active = nonzero_active_set(graph, arch, sched::kInactive);
  }
  std::vector<float> a() const { return arch.logits[0].value().to_vector(); }
};

// dL_val/dA of the dense network at A: every candidate active and recorded, A a leaf, the
// weights frozen.
std::vector<double> dense_gradient(Setup& s) {
  Var coef(s.arch.logits[0].value().clone(), true);
  const sched::ActiveSet keep = s.arch.active;
  s.arch.active = sched::all_active(s.graph);
  StepContext ctx = s.context();
  {
    FreezeGuard freeze(s.sgd.params());
    forward_loss(ctx, s.val, {coef}, false).backward();
  }
  s.arch.active = keep;
  const std::vector<float> g = coef.grad().to_vector();
  return std::vector<double>(g.begin(), g.end());
}

// Omega's prox written out for the reference: soft-threshold every entry by t1, then scale
// each group by (1 - sqrt|G| t2 / ||z_G||)_+.
std::vector<double> reference_prox(std::vector<double> z, double t1,
                                   const std::vector<std::vector<int64_t>>& groups, double t2) {
  for (double& v : z) v = v > t1 ? v - t1 : v < -t1 ? v + t1 : 0.0;
  for (const std::vector<int64_t>& g : groups) {
    double sum = 0;
    for (int64_t i : g) sum += z[size_t(i)] * z[size_t(i)];
    const double t = std::sqrt(double(g.size())) * t2;
    const double scale = std::sqrt(sum) > t ? 1.0 - t / std::sqrt(sum) : 0.0;
    for (int64_t i : g) z[size_t(i)] *= scale;
  }
  return z;
}

std::vector<double> as_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

double largest(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// A with values of order 0.1 and some exact zeros; node a's entries small enough for its
// group to vanish under lambda = 2.
std::vector<float> start_a(const Setup& s) {
  Rng rng(8);
  std::vector<float> a = uniform_tensor(s.arch.logits[0].shape(), -0.3f, 0.3f, rng).to_vector();
  for (int64_t i : s.node_entries("a", 2)) a[size_t(i)] *= 0.02f;
  a[size_t(s.entry("b", 0, 1))] = 0.0f;  // b's sep_conv_3x3 from c_k-2
  a[size_t(s.entry("b", 2, 0))] = 0.0f;  // b's skip_connect from a
  a[size_t(s.entry("b", 1, 2))] = 0.0f;  // b's max_pool_3x3 from c_k-1
  return a;
}

}  // namespace

TEST_CASE("sparsenas: the l1 and group proxes on known answers") {
  std::vector<double> z = {0.3, -0.05, -0.2, 0.1};
  prox_l1(z, std::vector<double>(4, 0.1));
  check_near(z, {0.2, 0, -0.1, 0}, 1e-12);

  std::vector<double> g = {3, 4};
  prox_group(g, 1);
  check_near(g, {2.4, 3.2}, 1e-12);
  for (double t : {5.0, 7.0}) {
    g = {3, 4};
    prox_group(g, t);
    check_near(g, {0, 0}, 0);
  }
  CHECK(median_of({0.1, 0.001}) == doctest::Approx(0.0505).epsilon(1e-12));
  CHECK(median_of({3, 1, 2}) == 2);
}

TEST_CASE("sparsenas: the sparse group prox applies l1 first, then the group") {
  std::vector<double> z = {3, 4, 0.05};
  sparse_group_prox(z, std::vector<double>(3, 0.1), {{0, 1, 2}}, {1.0});
  check_near(z, {2.303297, 3.097538, 0}, 1e-6);
  // The other order gives another answer, so the check above tells them apart.
  std::vector<double> swapped = {3, 4, 0.05};
  prox_group(swapped, 1.0);
  prox_l1(swapped, std::vector<double>(3, 0.1));
  CHECK(std::abs(swapped[0] - 2.303297) > 1e-3);
  CHECK(std::abs(swapped[1] - 3.097538) > 1e-3);
}

TEST_CASE("sparsenas: HAPG on 1/2 ||A - c||^2 converges to the prox of c, a group vanishes") {
  CHECK(hapg_momentum(1) == 0.0);
  CHECK(hapg_momentum(2) == 0.25);
  CHECK(hapg_momentum(5) == doctest::Approx(4.0 / 7.0));
  const std::vector<double> c = {1, -0.5, 0.2, 0.05, 0.3, 0.1};
  const std::vector<std::vector<int64_t>> groups = {{0, 1, 2, 3}, {4, 5}};
  HapgVectors it{.a = std::vector<double>(6, 0.0),
                 .x = std::vector<double>(6, 0.0),
                 .v = std::vector<double>(6, 0.0)};
  const HapgSettings settings{.lr = 0.5, .lambda = 0.4, .alpha = 0.5};
  std::vector<double> previous_x = it.x;
  for (int k = 1; k <= 300; ++k) {
    std::vector<double> grad(6);
    for (size_t i = 0; i < 6; ++i) grad[i] = it.a[i] - c[i];
    hapg_iteration(it, grad, groups, settings);
    CHECK(it.k == k);
    for (size_t i = 0; i < 6; ++i) {  // v = x_k - x_{k-1}, A = x_k + u_k v
      CHECK(it.v[i] == doctest::Approx(it.x[i] - previous_x[i]).epsilon(1e-12));
      CHECK(it.a[i] == doctest::Approx(it.x[i] + hapg_momentum(k) * it.v[i]).epsilon(1e-12));
    }
    previous_x = it.x;
  }
  check_near(it.x, {0.425468, -0.159551, 0, 0, 0, 0}, 1e-6);
}

TEST_CASE("sparsenas: AdamHAPG's first step uses per-entry steps and the median for the group") {
  HapgVectors it{.a = {1, 1}, .x = {1, 1}, .v = {0, 0}};
  const HapgSettings settings{.lr = 0.01, .lambda = 0.1, .alpha = 0.5, .adam = true};
  hapg_iteration(it, {0.1, 10}, {{0, 1}}, settings);
  check_near(it.x, {0.982481, 0.987419}, 1e-6);
  check_near(it.a, it.x, 1e-15);  // u_1 = 0
  // Its pieces: steps eta / |g| = (0.1, 0.001), z = (0.99, 0.99), l1 at eta_i * 0.05.
  std::vector<double> z = {0.99, 0.99};
  prox_l1(z, {0.1 * 0.05, 0.001 * 0.05});
  check_near(z, {0.985, 0.98995}, 1e-12);
  prox_group(z, std::sqrt(2.0) * 0.0505 * 0.05);
  check_near(z, it.x, 1e-6);
  // Adam's moments after one step (beta1 0.5, beta2 0.999).
  check_near(it.m, {0.05, 5}, 1e-12);
  check_near(it.s, {1e-5, 0.1}, 1e-12);
}

TEST_CASE("sparsenas: refuses none, path weights and edge BNs, naming the place") {
  const Algorithm& algo = find_algorithm("sparsenas");
  auto start = [&](const std::string& text) {
    const spec::Space space = spec::parse_string(text, "s.json");
    const ir::Graph graph = spec::compile(space);
    return algo.initial_state(graph, space, algo.default_hyperparameters(), 1);
  };
  CHECK_THROWS_WITH_AS(start(testing::kTinySpace),
                       "s.json:/cells/0/nodes/0/from/0: SparseNAS has no 'none' op (a zero path "
                       "is an entry A = 0); remove 'none' from op set 'small'",
                       Error);
  std::string paths = tiny_space_without_none();
  paths.replace(paths.find("\"keep\": 2}"), 10, "\"keep\": 2, \"path_weights\": true}");
  CHECK_THROWS_WITH_AS(start(paths),
                       doctest::Contains("s.json:/cells/0/nodes/0: SparseNAS weighs every (edge, "
                                         "op) entry itself; remove \"path_weights\""),
                       Error);
  std::string bn = tiny_space_without_none();
  bn.replace(bn.find("\"classes\": 3,"), 13, "\"classes\": 3, \"edge_bn\": true,");
  CHECK_THROWS_WITH_AS(start(bn), doctest::Contains("/edge_bn: SparseNAS zeroes whole nodes"),
                       Error);
}

TEST_CASE("sparsenas: the start is DARTS' draw, x = A, and the groups are the nodes") {
  Setup s;
  const ArchState darts = initial_arch_state(s.graph, s.space.arch.init_std, 1);
  CHECK(s.a() == darts.logits[0].value().to_vector());
  const SparseNasState& state = sparsenas_state(s.arch);
  CHECK(state.x[0] == s.a());
  CHECK(state.iterations == 0);
  REQUIRE(state.groups.size() == 2);
  CHECK(state.groups[0].label == "normal/a");
  CHECK(state.groups[1].label == "normal/b");
  std::vector<int64_t> a = state.groups[0].entries, b = state.groups[1].entries;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<int64_t> expect_a = s.node_entries("a", 2), expect_b = s.node_entries("b", 3);
  std::sort(expect_a.begin(), expect_a.end());
  std::sort(expect_b.begin(), expect_b.end());
  CHECK(a == expect_a);  // |G_a| = 2 edges x 3 ops
  CHECK(b == expect_b);  // |G_b| = 3 x 3
  CHECK(s.arch.active == sched::all_active(s.graph));
}

TEST_CASE("sparsenas: three first-order HAPG steps equal the reference from the dense gradient") {
  Setup s;
  s.hyper.set_choice("sparsenas-order", "first");
  s.hyper.set_number("sparsenas-lambda", 2.0);
  s.set_a(start_a(s));
  const std::vector<std::vector<int64_t>> groups = {s.node_entries("a", 2), s.node_entries("b", 3)};
  const double eta = 0.025, lambda = 2.0, alpha = 0.5;  // epoch 0 of 1: eta = --sparsenas-lr
  std::vector<double> a = as_double(s.a()), x = a, v(a.size(), 0.0);
  for (int k = 1; k <= 3; ++k) {
    CAPTURE(k);
    const std::vector<double> g = dense_gradient(s);
    REQUIRE(largest(g) > 0);
    const sched::ActiveSet nonzero = nonzero_active_set(s.graph, s.arch, sched::kInactive);

    StepContext ctx = s.context();
    reset_kernel_counts();
    sparsenas_architecture_gradient(ctx);
    // Every candidate ran forward; backward only through the non-zero entries' ops, and no
    // weight received a gradient.
    CHECK(forward_count(OpKind::conv2d) ==
          conv_nodes(s.graph, sched::make_plan(s.graph, sched::all_active(s.graph))));
    CHECK(backward_count(OpKind::conv2d) <=
          conv_nodes(s.graph, sched::make_plan(s.graph, nonzero)));
    for (const Var& w : s.sgd.params()) CHECK_FALSE(w.has_grad());
    const std::vector<double> sparse = as_double(s.arch.logits[0].grad().to_vector());
    for (size_t i = 0; i < g.size(); ++i) CHECK(std::abs(sparse[i] - g[i]) <= 1e-5 * largest(g));

    sparsenas_proximal_step(ctx);
    std::vector<double> z(a.size());
    for (size_t i = 0; i < a.size(); ++i) z[i] = a[i] - eta * g[i];
    const std::vector<double> x_new =
        reference_prox(z, eta * lambda * alpha, groups, eta * lambda * (1 - alpha));
    const double u_previous = k == 1 ? 0.0 : double(k - 2) / double(k + 1);
    const double u = double(k - 1) / double(k + 2);
    for (size_t i = 0; i < a.size(); ++i) {
      v[i] = x_new[i] - a[i] + u_previous * v[i];
      a[i] = x_new[i] + u * v[i];
    }
    x = x_new;
    const SparseNasState& state = sparsenas_state(s.arch);
    check_near(as_double(state.x[0]), x, 1e-6);
    check_near(as_double(state.v[0]), v, 1e-6);
    check_near(as_double(s.a()), a, 1e-6);
    CHECK(state.iterations == k);
    CHECK(state.lambda == lambda);
    CHECK(state.lr == doctest::Approx(eta));
  }
  // Node a's group vanished (x and A zero), b kept some of its paths.
  for (int64_t i : s.node_entries("a", 2)) CHECK(x[size_t(i)] == 0.0);
  int64_t kept = 0;
  for (int64_t i : s.node_entries("b", 3)) kept += x[size_t(i)] != 0.0;
  CHECK(kept > 0);
  CHECK(s.arch.active == nonzero_active_set(s.graph, s.arch, sched::kInactive));
}

TEST_CASE("sparsenas: the weight step runs and trains only the non-zero entries' ops") {
  Setup s;
  std::vector<float> a = start_a(s);
  for (float& v : a) v = v == 0.0f ? 0.0f : 0.5f + v;  // no node left without an op
  s.set_a(a);
  const sched::ActiveSet active = s.arch.active;
  int64_t zeros = 0;
  for (uint8_t f : active) zeros += f == sched::kInactive;
  CHECK(zeros == 3);  // one candidate per zeroed entry (the tiny network has one cell)

  std::vector<Tensor> before;
  for (const Var& w : s.params.all()) before.push_back(w.value().clone());
  StepContext ctx = s.context();
  reset_kernel_counts();
  update_weights(ctx);
  CHECK(forward_count(OpKind::conv2d) == conv_nodes_of_nonzero(s.graph, s.arch));
  CHECK(backward_count(OpKind::conv2d) <= conv_nodes_of_nonzero(s.graph, s.arch));
  CHECK(forward_count(OpKind::max_pool) == 4);  // of the five edges, b/e1's max_pool is off
  for (size_t i = 0; i < s.graph.params.size(); ++i) {
    const ir::Parameter& p = s.graph.params[i];
    if (p.is_buffer || !p.candidate.valid()) continue;
    CAPTURE(p.name);
    const bool on = active[p.candidate.index()] == sched::kActive;
    CHECK(s.params.all()[i].has_grad() == on);
    const std::vector<float> now = s.params.all()[i].value().to_vector();
    CHECK((now == before[i].to_vector()) == !on);  // untouched: no decay, no momentum
  }
}

TEST_CASE(
    "sparsenas: second order equals DARTS' gradient of the dense network, the unrolled "
    "step trains what the weight step trains") {
  Setup s;
  // No weight decay, so the dense unrolled step leaves zero-coefficient ops where they are
  // unless their momentum moves them.
  Sgd sgd{s.params.weights(), SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.0f}};
  auto context = [&] {
    return StepContext(s.graph, s.params, s.arch, sgd, s.adam, s.train, s.val, s.hyper);
  };
  // One weight step with every entry non-zero gives every op a momentum buffer.
  s.set_a(std::vector<float>(size_t(s.arch.logits[0].value().numel()), 0.3f));
  {
    StepContext ctx = context();
    update_weights(ctx);
  }
  std::vector<float> a = start_a(s);
  for (float& v : a) v = v == 0.0f ? 0.0f : 0.5f + v;
  s.set_a(a);

  const sched::ActiveSet nonzero = nonzero_active_set(s.graph, s.arch, sched::kInactive);
  reset_kernel_counts();
  StepContext ctx = context();
  sparsenas_architecture_gradient(ctx);
  const std::vector<double> sparse = as_double(s.arch.logits[0].grad().to_vector());
  // The unrolled pass runs only the non-zero entries' ops; the three passes at w' and w+-
  // run every op (the zero ones forward-only).
  const int64_t unrolled = conv_nodes(s.graph, sched::make_plan(s.graph, nonzero));
  const int64_t all = conv_nodes(s.graph, sched::make_plan(s.graph, sched::all_active(s.graph)));
  CHECK(forward_count(OpKind::conv2d) == unrolled + 3 * all);
  REQUIRE(unrolled < all);

  // The dense supernet through DARTS' pass: every op recorded, so the zero-coefficient ones
  // get a zero weight gradient and the unrolled step moves them by their momentum.
  auto dense = [&] {
    const sched::ActiveSet keep = s.arch.active;
    s.arch.active = sched::all_active(s.graph);
    StepContext c = context();
    second_order_gradient(c);
    s.arch.active = keep;
    return as_double(s.arch.logits[0].grad().to_vector());
  };
  const std::vector<double> moved = dense();
  // With the momentum of the zero entries' ops cleared, the dense unrolled step leaves them
  // too: then it is the sparse one.
  StateTensors state = sgd.state_tensors();
  for (auto& [key, t] : state) {
    for (const ir::Parameter& p : s.graph.params) {
      if (p.is_buffer || !p.candidate.valid() || nonzero[p.candidate.index()] != sched::kInactive)
        continue;
      if (key == p.name + "/momentum") t = Tensor::zeros(t.shape());
    }
  }
  sgd.load_state_tensors(state);
  const std::vector<double> held = dense();
  const double scale = largest(held);
  REQUIRE(scale > 0);
  double moved_apart = 0, apart = 0;
  for (size_t i = 0; i < sparse.size(); ++i) {
    apart = std::max(apart, std::abs(sparse[i] - held[i]));
    moved_apart = std::max(moved_apart, std::abs(moved[i] - held[i]));
  }
  MESSAGE("sparse vs dense: ", apart, "; dense with the zero ops moved by momentum: ", moved_apart,
          " (largest gradient ", scale, ")");
  CHECK(apart <= 1e-5 * scale);
  CHECK(moved_apart > 1e-3 * scale);
}

TEST_CASE("sparsenas: a zero entry revives through its forward-only gradient, unless skipped") {
  for (int every : {1, 2}) {
    CAPTURE(every);
    Setup s;
    s.hyper.set_choice("sparsenas-order", "first");
    s.hyper.set_number("sparsenas-lambda", 0.0);
    s.hyper.set_number("sparsenas-lambda-step", 0.0);
    s.hyper.set_number("sparsenas-revive-every", every);
    std::vector<float> a(size_t(s.arch.logits[0].value().numel()), 0.4f);
    const int64_t off = s.entry("b", 1, 1);  // b's sep_conv_3x3 from c_k-1
    a[size_t(off)] = 0.0f;
    s.set_a(a);
    sparsenas_state(s.arch).iterations = 1;  // step 2: a skipped one when every = 2
    const double g = dense_gradient(s)[size_t(off)];
    REQUIRE(std::abs(g) > 1e-6);
    const int64_t nonzero_convs = conv_nodes(s.graph, sched::make_plan(s.graph, s.arch.active));

    StepContext ctx = s.context();
    reset_kernel_counts();
    sparsenas_architecture_gradient(ctx);
    const int64_t convs = forward_count(OpKind::conv2d);
    sparsenas_proximal_step(ctx);
    const float revived = sparsenas_state(s.arch).x[0][size_t(off)];
    if (every == 1) {
      CHECK(revived == doctest::Approx(-0.025 * g).epsilon(1e-4));  // lambda 0: x = z
      CHECK(s.arch.active == sched::all_active(s.graph));
    } else {
      CHECK(revived == 0.0f);  // held at zero, and its op ran no kernel at all
      CHECK(s.a()[size_t(off)] == 0.0f);
      CHECK(convs == nonzero_convs);
      CHECK(s.arch.active != sched::all_active(s.graph));
    }
  }
}

TEST_CASE("sparsenas: lambda grows per epoch and eta follows its cosine, AdamHAPG in the step") {
  Setup s;
  s.hyper.set_choice("sparsenas-order", "first");
  StepContext ctx = s.context();
  ctx.epoch = 3;
  ctx.epochs = 10;
  sparsenas_architecture_gradient(ctx);
  sparsenas_proximal_step(ctx);
  const SparseNasState& state = sparsenas_state(s.arch);
  CHECK(state.lambda == doctest::Approx(0.01 + 0.01 * 3));
  CHECK(state.lr == doctest::Approx(CosineSchedule(0.025f, 0.001f, 10).lr_at(3)));

  // AdamHAPG with lambda 0 is Adam's first step: A - lr g / (|g| + eps), lr the
  // architecture optimizer's (0.01 here), no weight decay.
  Setup t;
  t.hyper.set_choice("sparsenas-order", "first");
  t.hyper.set_choice("sparsenas-optimizer", "adam-hapg");
  t.hyper.set_number("sparsenas-lambda", 0.0);
  t.hyper.set_number("sparsenas-lambda-step", 0.0);
  const std::vector<double> start = as_double(t.a());
  const std::vector<double> g = dense_gradient(t);
  StepContext c = t.context();
  sparsenas_architecture_gradient(c);
  sparsenas_proximal_step(c);
  const std::vector<double> after = as_double(t.a());
  for (size_t i = 0; i < g.size(); ++i) {
    CAPTURE(i);
    CHECK(after[i] ==
          doctest::Approx(start[i] - 0.01 * g[i] / (std::abs(g[i]) + 1e-8)).epsilon(1e-4));
    CHECK(double(sparsenas_state(t.arch).m[0][i]) == doctest::Approx(0.5 * g[i]).epsilon(1e-4));
  }
}

namespace {
// Three nodes, so that a pruned node can take a downstream one with it and leave a third.
constexpr const char* kThreeNodes = R"({
  "format": 1, "name": "three",
  "op_sets": {"small": ["skip_connect", "sep_conv_3x3", "max_pool_3x3"]},
  "cells": [{
    "name": "normal", "inputs": ["c_k-2", "c_k-1"],
    "nodes": [
      {"name": "a", "from": ["c_k-2", "c_k-1"], "ops": "small"},
      {"name": "b", "from": ["c_k-2", "c_k-1", "a"], "ops": "small"},
      {"name": "c", "from": ["c_k-2", "c_k-1", "a", "b"], "ops": "small"}
    ],
    "output": {"concat": ["a", "b", "c"]}
  }],
  "network": {
    "input": [1, 8, 8], "classes": 3,
    "stem": [{"op": "conv_3x3", "channels": 6}, {"op": "batch_norm"}],
    "body": [{"cell": "normal", "channels": 4}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";
}  // namespace

TEST_CASE("sparsenas: derivation keeps mixed paths, drops a zeroed node and the one it fed") {
  testing::TinySearch s("sparsenas", kThreeNodes);
  const int64_t cols = 3;  // skip_connect, sep_conv_3x3, max_pool_3x3
  auto at = [&](const std::string& node, int edge, int64_t col) {
    const ir::MixedEdge* m = find_mixed_edge(s.graph, "normal", node, edge);
    REQUIRE(m != nullptr);
    return size_t(int64_t(m->row) * cols + col);
  };
  std::vector<float>& x = sparsenas_state(s.arch).x[0];
  std::fill(x.begin(), x.end(), 0.0f);  // node a's group is zero: a is pruned
  x[at("b", 2, 1)] = 0.7f;              // b's only path comes from a: b goes with it
  x[at("c", 0, 2)] = 0.3f;              // c: max_pool_3x3 from c_k-2,
  x[at("c", 1, 0)] = -0.2f;             // skip_connect and sep_conv_3x3 from c_k-1 (two
  x[at("c", 1, 1)] = 0.05f;             // parallel edges)
  x[at("c", 2, 2)] = 0.9f;              // from a, pruned
  x[at("c", 3, 0)] = 0.4f;              // from b, pruned
  Derived d = derive(s.space, s.graph, s.arch);
  const spec::Cell& cell = d.space.cells[0];
  REQUIRE(cell.nodes.size() == 1);
  CHECK(cell.nodes[0].name == "c");
  REQUIRE(cell.nodes[0].edges.size() == 3);
  CHECK(cell.nodes[0].edges[0].from == "c_k-2");
  CHECK(cell.nodes[0].edges[0].ops == std::vector<std::string>{"max_pool_3x3"});
  CHECK(cell.nodes[0].edges[1].from == "c_k-1");
  CHECK(cell.nodes[0].edges[1].ops == std::vector<std::string>{"skip_connect"});
  CHECK(cell.nodes[0].edges[2].from == "c_k-1");
  CHECK(cell.nodes[0].edges[2].ops == std::vector<std::string>{"sep_conv_3x3"});
  CHECK(cell.output.concat == std::vector<std::string>{"c"});
  // One list per node, since a node does not keep exactly two edges.
  CHECK(d.genotype ==
        "Genotype(normal=[[('max_pool_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1)]], "
        "normal_concat=[2])");
  // The derived spec is a fixed network that reads back and compiles.
  const spec::Space back = spec::parse_string(spec::to_json(d.space), "derived.json");
  CHECK(back.is_fixed());
  CHECK(spec::compile(back).mixed_edges.empty());

  // A threshold drops the small path; with two edges left the list is DARTS' flat one.
  sparsenas_state(s.arch).threshold = 0.1;
  d = derive(s.space, s.graph, s.arch);
  CHECK(d.genotype ==
        "Genotype(normal=[('max_pool_3x3', 0), ('skip_connect', 1)], normal_concat=[2])");
  sparsenas_state(s.arch).threshold = 0.25;
  d = derive(s.space, s.graph, s.arch);
  CHECK(d.genotype == "Genotype(normal=[[('max_pool_3x3', 0)]], normal_concat=[2])");
  // The checkpoint keeps x and the threshold: derivation from it (no options) agrees.
  const Algorithm& algo = find_algorithm("sparsenas");
  io::Checkpoint ckpt;
  algo.save(s.graph, s.arch, ckpt);
  ArchState fresh = algo.initial_state(s.graph, s.space, algo.default_hyperparameters(), 0);
  algo.restore(s.graph, fresh, ckpt, false);
  CHECK(sparsenas_state(fresh).threshold == 0.25);
  CHECK(derive(s.space, s.graph, fresh).genotype == d.genotype);

  // Every node pruned: nothing to derive.
  std::fill(x.begin(), x.end(), 0.0f);
  CHECK_THROWS_WITH_AS(derive(s.space, s.graph, s.arch),
                       doctest::Contains("tiny.json:/cells/0: SparseNAS pruned every node of "
                                         "cell 'normal'"),
                       Error);
}

TEST_CASE("sparsenas: derivation with two edges per node keeps DARTS' genotype format") {
  Setup s;
  std::vector<float>& x = sparsenas_state(s.arch).x[0];
  std::fill(x.begin(), x.end(), 0.0f);
  x[size_t(s.entry("a", 0, 1))] = 0.3f;
  x[size_t(s.entry("a", 1, 0))] = 0.3f;
  x[size_t(s.entry("b", 2, 2))] = -0.3f;
  x[size_t(s.entry("b", 0, 0))] = 0.3f;
  const Derived d = derive(s.space, s.graph, s.arch);
  CHECK(d.genotype ==
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('skip_connect', 0), "
        "('max_pool_3x3', 2)], normal_concat=[2, 3])");
}

TEST_CASE("sparsenas: epoch records carry lambda, eta, the paths per node and candidates run") {
  Rng rng(17);
  Dataset data;
  data.images = normal_tensor({24, 1, 8, 8}, 0, 1, rng);
  for (int i = 0; i < 24; ++i) data.labels.push_back(int32_t(rng.below(3)));
  data.num_classes = 3;
  data.name = "random";
  for (double lambda : {0.02, 1.0}) {
    CAPTURE(lambda);
    SearchOptions options{.algorithm = "sparsenas",
                          .epochs = 2,
                          .batch_size = 4,
                          .seed = 5,
                          .log_every = 0,
                          .lr = 0.1f};
    options.hyper = find_algorithm("sparsenas").default_hyperparameters();
    options.hyper.set_number("sparsenas-lambda", lambda);
    SearchSession session(spec::parse_string(tiny_space_without_none(), "tiny.json"), data,
                          options);
    std::vector<RunRecord> records;
    session.set_record_callback([&](const RunRecord& r) { records.push_back(r); });
    session.run();
    REQUIRE(records.size() == 2);
    for (const RunRecord& r : records) {
      CAPTURE(r.epoch);
      const spec::JsonValue* s = r.details.find("sparsenas");
      REQUIRE(s != nullptr);
      CHECK(s->find("lambda")->as_double() == doctest::Approx(lambda + 0.01 * double(r.epoch)));
      CHECK(s->find("eta")->as_double() ==
            doctest::Approx(CosineSchedule(0.025f, 0.001f, 2).lr_at(r.epoch)));
      CHECK(s->find("iterations")->as_integer() == 3 * (r.epoch + 1));
      CHECK(s->find("entries")->as_integer() == 15);
      const spec::JsonValue& c = *s->find("candidates_per_step");
      CHECK(c.find("total")->as_integer() == 15);
      CHECK(c.find("weight_step")->as_double() <= 15);
      // Every op's output is used in each architecture pass: with backward or forward-only.
      CHECK(c.find("arch_recorded")->as_double() + c.find("arch_forward_only")->as_double() ==
            doctest::Approx(15.0));
      const spec::JsonValue& paths = *s->find("nonzero_paths");
      CHECK(paths.find("normal/a")->as_integer() + paths.find("normal/b")->as_integer() ==
            s->find("nonzero")->as_integer());
    }
    const spec::JsonValue& last = *records.back().details.find("sparsenas");
    if (lambda < 1) {
      CHECK(records.back().details.find("genotype")->is_string());
      CHECK(last.find("nonzero")->as_integer() > 0);
      // derive reads x from the checkpoint alone.
      const std::string genotype = session.derive().genotype;
      CHECK(derive_from_checkpoint(session.space(), session.checkpoint()).genotype == genotype);
    } else {  // everything pruned: the record says why there is no genotype
      CHECK(last.find("nonzero")->as_integer() == 0);
      CHECK(last.find("candidates_per_step")->find("weight_step")->as_double() == 0.0);
      CHECK(records.back().details.find("genotype")->is_null());
      CHECK(records.back()
                .details.find("derive_error")
                ->as_string()
                .find("pruned every node of cell 'normal'") != std::string::npos);
    }
  }
}
