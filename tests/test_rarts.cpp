// RARTS against known answers: the paper's toy problem (Sec. III) driven through the real
// passes, the latency penalty's gradient, and on the tiny space each of the three updates
// against an independently computed gradient, in the Gauss-Seidel order.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/derive.h"
#include "algorithms/latency.h"
#include "algorithms/rarts.h"
#include "engine/error.h"
#include "engine/optim/sgd.h"
#include "engine/sched/executor.h"
#include "ops/ops.h"
#include "spec/json_value.h"
#include "tests/support/tiny_search.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

// ---- The toy problem (RARTS Sec. III) ----
// L_v(y, a) = a y - 2 a + 1,  L_t(w, a) = w^2 - 2 a w + a^2, scalar w, y and a, plain
// gradient steps. The passes run unchanged: a StepContext::loss_model stands in for the
// network, and an identity relaxation makes the coefficient a itself (no softmax).
class IdentityRelaxation final : public Algorithm {
 public:
  IdentityRelaxation() : Algorithm("toy", "the toy's relaxation: the coefficient is alpha") {}
  std::vector<NamedPass> passes() const override { return {}; }
  std::vector<Var> coefficients(const ArchState& arch) const override {
    return {arch.logits[0].detach()};
  }
  std::vector<Var> relaxed_coefficients(const ArchState& arch) const override {
    return {arch.logits[0]};
  }
};

Var constant(float v) { return Var(Tensor::full({1}, v)); }

Var toy_loss(const ir::ParameterStore& params, bool is_train, const std::vector<Var>& c) {
  const Var& x = params.all()[0];  // w, or y when the pass hands RARTS' second network
  const Var a = ops::reshape(c[0], {1});
  if (is_train)  // w^2 - 2 a w + a^2
    return ops::add(ops::add(ops::mul(x, x), ops::scale(ops::mul(a, x), constant(-2))),
                    ops::mul(a, a));
  return ops::add(ops::add(ops::mul(a, x), ops::scale(a, constant(-2))), constant(1));
}

ir::Graph one_parameter_graph() {
  ir::Graph g;
  g.params.push_back(ir::Parameter{.name = "x", .shape = Shape{1}, .init = ir::Init::zeros});
  return g;
}

struct Toy {
  IdentityRelaxation relaxation;
  ir::Graph graph = one_parameter_graph();
  ir::ParameterStore params{graph, 0};
  ArchState arch;
  HyperValues hyper;
  std::unique_ptr<Sgd> w_sgd, arch_sgd;
  Batch none;  // the loss model reads no batch

  // `algorithm`'s hyperparameters (MiLeNAS: its default lambda 1); RARTS gets lambda and beta.
  Toy(const std::string& algorithm, float alpha, float w, float y, double lambda = 10,
      double beta = 10)
      : hyper(find_algorithm(algorithm).default_hyperparameters()) {
    arch.algorithm = &relaxation;
    arch.logits.emplace_back(Tensor::full({1, 1}, alpha), true, "alpha");
    params.all()[0].value().data()[0] = w;
    if (algorithm == "rarts") {
      hyper.set_number("rarts-lambda", lambda);
      hyper.set_number("rarts-beta", beta);
      init_rarts_state(arch, graph, hyper, 0);
      rarts_state(arch).y->all()[0].value().data()[0] = y;
    }
    const SgdOptions plain{.lr = 0.01f, .momentum = 0.0f, .weight_decay = 0.0f};
    w_sgd = std::make_unique<Sgd>(params.weights(), plain);
    arch_sgd = std::make_unique<Sgd>(arch.logits, plain);
  }

  void steps(const std::string& algorithm, int n) {
    for (int i = 0; i < n; ++i) {
      StepContext ctx(graph, params, arch, *w_sgd, *arch_sgd, none, none, hyper);
      ctx.grad_clip = 0;  // plain gradient steps
      ctx.loss_model = toy_loss;
      ctx.step = uint64_t(i);
      run_step(find_algorithm(algorithm), ctx);
    }
  }
  double alpha() const { return double(arch.logits[0].value().item()); }
  double w() const { return double(params.all()[0].value().item()); }
  double y() const { return double(rarts_state(arch).y->all()[0].value().item()); }
};

// ---- The tiny space: reference gradients computed without the passes ----
struct Gradients {
  std::vector<Tensor> weights;  // of the network's weights (ParameterStore::weights order)
  std::vector<Tensor> alpha;    // of the logits
};

// d/d(weights, alpha) of `scale` * CE(network(params, softmax(alpha)), batch), with its
// own copies of the weights and the logits, so nothing the passes use is touched.
Gradients reference_gradients(const ir::Graph& graph, const ir::ParameterStore& params,
                              const std::vector<Var>& logits, const Batch& batch, float scale) {
  const ir::ParameterStore copy = params.clone();
  std::vector<Var> alpha, coefficients;
  for (const Var& l : logits) {
    alpha.emplace_back(l.value().clone(), true);
    coefficients.push_back(ops::softmax(alpha.back()));
  }
  const sched::Plan plan = sched::make_plan(graph, sched::all_active(graph));
  const Var out = sched::run(graph, copy, plan, Var(batch.images),
                             sched::RunOptions{.training = true, .coefficients = coefficients});
  ops::cross_entropy(out, Var(batch.labels)).backward(Tensor::full({1}, scale));
  Gradients g;
  for (const Var& w : copy.weights())
    g.weights.push_back(w.has_grad() ? w.grad().clone() : Tensor::zeros(w.shape()));
  for (const Var& a : alpha) g.alpha.push_back(a.grad().clone());
  return g;
}

std::vector<Tensor> values_of(const std::vector<Var>& vars) {
  std::vector<Tensor> out;
  out.reserve(vars.size());
  for (const Var& v : vars) out.push_back(v.value().clone());
  return out;
}

// a - (g + beta (a - b)), element-wise over matching lists (one SGD step of lr 1).
std::vector<Tensor> coupled_step(const std::vector<Tensor>& a, const std::vector<Tensor>& g,
                                 const std::vector<Tensor>& b, float beta) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < a.size(); ++i) {
    Tensor t = a[i].clone();
    for (int64_t e = 0; e < t.numel(); ++e)
      t.data()[e] -= g[i].data()[e] + beta * (a[i].data()[e] - b[i].data()[e]);
    out.push_back(t);
  }
  return out;
}

double max_difference(const std::vector<Tensor>& a, const std::vector<Var>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<float> x = a[i].to_vector(), y = b[i].value().to_vector();
    for (size_t e = 0; e < x.size(); ++e) worst = std::max(worst, std::fabs(double(x[e] - y[e])));
  }
  return worst;
}

double max_difference(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::vector<float> x = a[i].to_vector(), y = b[i].to_vector();
    for (size_t e = 0; e < x.size(); ++e) worst = std::max(worst, std::fabs(double(x[e] - y[e])));
  }
  return worst;
}

// A store holding `values` as its weights (buffers copied from `like`).
ir::ParameterStore with_weights(const ir::ParameterStore& like, const std::vector<Tensor>& values) {
  ir::ParameterStore out = like.clone();
  const std::vector<Var> w = out.weights();
  for (size_t i = 0; i < w.size(); ++i) w[i].value().copy_from(values[i]);
  return out;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("cellgraph_rarts_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("rarts toy: the first step is w = 1.8, y = 0.16 (against the new w), alpha = 1.9784") {
  Toy toy("rarts", 2, 2, 0);
  toy.steps("rarts", 1);
  CHECK(toy.w() == doctest::Approx(1.8).epsilon(1e-6));
  // With the old w in y's coupling term, y would be 0.18.
  CHECK(toy.y() == doctest::Approx(0.16).epsilon(1e-6));
  CHECK(toy.alpha() == doctest::Approx(1.9784).epsilon(1e-6));
}

TEST_CASE("rarts toy: converges to the fixed point 4lb/D, 2b(2l-1)/D, 2(2lb-2l-b)/D") {
  SUBCASE("lambda = beta = 10: (40/37, 38/37, 34/37)") {
    Toy toy("rarts", 2, 2, 0, 10, 10);
    toy.steps("rarts", 5000);
    CHECK(toy.alpha() == doctest::Approx(40.0 / 37).epsilon(1e-5));
    CHECK(toy.w() == doctest::Approx(38.0 / 37).epsilon(1e-5));
    CHECK(toy.y() == doctest::Approx(34.0 / 37).epsilon(1e-5));
  }
  SUBCASE("lambda = beta = 15: (20/19, 58/57, 18/19), the paper's (1.053, 1.018, 0.947)") {
    Toy toy("rarts", 2, 2, 0, 15, 15);
    toy.steps("rarts", 5000);
    CHECK(toy.alpha() == doctest::Approx(20.0 / 19).epsilon(1e-5));
    CHECK(toy.w() == doctest::Approx(58.0 / 57).epsilon(1e-5));
    CHECK(toy.y() == doctest::Approx(18.0 / 19).epsilon(1e-5));
  }
}

TEST_CASE("rarts toy: first-order DARTS and MiLeNAS converge to the spurious (2, 2)") {
  for (const std::string algo : {"darts", "milenas"}) {
    CAPTURE(algo);
    Toy start_there(algo, 2, 2, 0);  // RARTS' start: they stay (RARTS leaves, above)
    start_there.steps(algo, 2000);
    CHECK(start_there.alpha() == doctest::Approx(2).epsilon(1e-6));
    CHECK(start_there.w() == doctest::Approx(2).epsilon(1e-6));
    Toy elsewhere(algo, 1, 0.5f, 0);
    elsewhere.steps(algo, 5000);
    CHECK(elsewhere.alpha() == doctest::Approx(2).epsilon(1e-5));
    CHECK(elsewhere.w() == doctest::Approx(2).epsilon(1e-5));
  }
  Toy rarts("rarts", 2, 2, 0);
  rarts.steps("rarts", 5000);
  CHECK(std::fabs(rarts.alpha() - 2) > 0.9);
}

TEST_CASE("rarts tiny space: w, then y against the new w, then alpha against both") {
  testing::TinySearch t("rarts");
  t.hyper.set_number("rarts-lambda", 0.7);
  t.hyper.set_number("rarts-beta", 0.3);
  RartsState& s = rarts_state(t.arch);
  const SgdOptions plain{.lr = 1.0f, .momentum = 0.0f, .weight_decay = 0.0f};
  Sgd w_sgd(t.params.weights(), plain);
  Sgd arch_sgd(arch_variables(t.arch), plain);
  StepContext ctx(t.graph, t.params, t.arch, w_sgd, arch_sgd, t.train, t.val, t.hyper);
  ctx.grad_clip = 0;
  const std::vector<Tensor> w0 = values_of(t.params.weights()), y0 = values_of(s.y->weights());
  const std::vector<Tensor> a0 = values_of(t.arch.logits);
  REQUIRE(max_difference(w0, y0) > 0.1);  // y is initialised independently

  // 1. w1 = w0 - (lambda dL_t(w0)/dw + beta (w0 - y0)).
  const Gradients gt0 = reference_gradients(t.graph, t.params, t.arch.logits, t.train, 0.7f);
  const std::vector<Tensor> w1 = coupled_step(w0, gt0.weights, y0, 0.3f);
  rarts_update_w(ctx);
  CHECK(max_difference(w1, t.params.weights()) < 1e-5);
  CHECK(max_difference(y0, s.y->weights()) == 0);  // y and alpha untouched
  CHECK(max_difference(a0, t.arch.logits) == 0);

  // 2. y1 = y0 - (dL_v(y0)/dy + beta (y0 - w1)); with the old w0 it would differ.
  const Gradients gv0 = reference_gradients(t.graph, *s.y, t.arch.logits, t.val, 1.0f);
  const std::vector<Tensor> y1 = coupled_step(y0, gv0.weights, w1, 0.3f);
  const std::vector<Tensor> y1_jacobi = coupled_step(y0, gv0.weights, w0, 0.3f);
  rarts_update_y(ctx);
  CHECK(max_difference(y1, s.y->weights()) < 1e-5);
  CHECK(max_difference(y1_jacobi, s.y->weights()) > 1e-3);
  CHECK(max_difference(w1, t.params.weights()) == 0);
  CHECK(max_difference(a0, t.arch.logits) == 0);

  // 3. alpha1 = alpha0 - (lambda dL_t(w1)/dalpha + dL_v(y1)/dalpha), weights untouched.
  const Gradients gt1 = reference_gradients(t.graph, t.params, t.arch.logits, t.train, 0.7f);
  const Gradients gv1 = reference_gradients(t.graph, *s.y, t.arch.logits, t.val, 1.0f);
  std::vector<Tensor> a1, a1_old;
  const Gradients gv_old = reference_gradients(t.graph, with_weights(*s.y, y0), t.arch.logits,
                                               t.val, 1.0f);  // y0 instead of y1
  for (size_t g = 0; g < a0.size(); ++g) {
    Tensor next = a0[g].clone(), old = a0[g].clone();
    for (int64_t e = 0; e < next.numel(); ++e) {
      next.data()[e] -= gt1.alpha[g].data()[e] + gv1.alpha[g].data()[e];
      old.data()[e] -= gt1.alpha[g].data()[e] + gv_old.alpha[g].data()[e];
    }
    a1.push_back(next);
    a1_old.push_back(old);
  }
  w_sgd.zero_grad();
  s.y_optimizer->zero_grad();
  rarts_update_architecture(ctx);
  CHECK(max_difference(a1, t.arch.logits) < 1e-6);
  CHECK(max_difference(a1_old, t.arch.logits) > 1e-5);
  CHECK(max_difference(w1, t.params.weights()) == 0);
  CHECK(max_difference(y1, s.y->weights()) == 0);
  for (const Var& w : t.params.weights()) CHECK_FALSE(w.has_grad());  // no weight gradients
  for (const Var& y : s.y->weights()) CHECK_FALSE(y.has_grad());

  // The step's records: the train batch from w's pass, the val batch from y's.
  CHECK(ctx.metrics.train_count == 4);
  CHECK(ctx.metrics.val_count == 4);
}

TEST_CASE("rarts: y has its own BN buffers, and --rarts-y-init copy starts it as w") {
  testing::TinySearch t("rarts");
  t.hyper.set_choice("rarts-y-init", "copy");
  t.arch = find_algorithm("rarts").initial_state(t.graph, t.space, t.hyper, 1);
  StepContext ctx(t.graph, t.params, t.arch, t.sgd, t.adam, t.train, t.val, t.hyper);
  const std::vector<Tensor> w0 = values_of(t.params.all());
  rarts_update_w(ctx);  // y copied w before w moved
  CHECK(max_difference(w0, rarts_state(t.arch).y->all()) == 0);
  rarts_update_y(ctx);
  // Both networks ran a training-mode forward on different batches: their BN running
  // statistics differ, each in its own buffers.
  const ir::ParameterStore& y = *rarts_state(t.arch).y;
  bool buffers_differ = false;
  for (size_t i = 0; i < t.graph.params.size(); ++i)
    if (t.graph.params[i].is_buffer)
      buffers_differ |= t.params.all()[i].value().to_vector() != y.all()[i].value().to_vector();
  CHECK(buffers_differ);
  CHECK(rarts_state(t.arch).distance > 0);
}

TEST_CASE("rarts: the latency term adds mu * p_j (Lat_j - <p, Lat>) to alpha's gradient") {
  testing::TinySearch t("rarts");
  const ir::ArchGroup& g = t.graph.arch_groups.at(0);
  LatencyTable table;
  table.device = "test";
  table.date = "today";
  table.input = {1, 8, 8};
  table.instances[g.cell] = 1;
  for (int32_t r = 0; r < g.rows; ++r)
    for (size_t k = 0; k < g.columns.size(); ++k)
      table.ms[g.cell][g.row_labels[size_t(r)]][g.columns[k]] = double(k) + 0.5 * r;
  const std::string path = temp_path("lat.json");
  std::ofstream(path) << spec::dump(latency_json(table), 2);
  t.hyper.set_text("latency", path);
  t.hyper.set_number("latency-weight", 2.0);
  t.arch = find_algorithm("rarts").initial_state(t.graph, t.space, t.hyper, 1);
  std::filesystem::remove(path);
  const Tensor lat = rarts_state(t.arch).latency.at(0);
  CHECK(lat.to_vector().at(g.columns.size() + 3) == doctest::Approx(3.5));  // row 1, column 3

  const SgdOptions plain{.lr = 1.0f, .momentum = 0.0f, .weight_decay = 0.0f};
  auto alpha_after_step = [&](double mu) {
    ArchState arch = t.arch;  // extra (y and its state) is deep-copied; the logits are not
    for (Var& l : arch.logits) l = Var(l.value().clone(), true, l.name());
    HyperValues hyper = t.hyper;
    hyper.set_number("latency-weight", mu);
    Sgd w_sgd(t.params.weights(), plain), arch_sgd(arch.logits, plain);
    StepContext ctx(t.graph, t.params, arch, w_sgd, arch_sgd, t.train, t.val, hyper);
    rarts_update_architecture(ctx);
    return arch.logits[0].value().to_vector();
  };
  const std::vector<float> without = alpha_after_step(0), with = alpha_after_step(2);
  const std::vector<float> grad = latency_gradient(t.arch.logits[0].value(), lat).to_vector();
  double worst = 0;
  for (size_t i = 0; i < grad.size(); ++i)
    worst = std::max(worst, std::fabs(double(without[i] - with[i]) - 2.0 * grad[i]));
  CHECK(worst < 1e-6);
  CHECK(std::fabs(double(without[1] - with[1])) > 1e-3);  // the term is not negligible

  HyperValues no_table = find_algorithm("rarts").default_hyperparameters();
  no_table.set_number("latency-weight", 1);
  CHECK_THROWS_WITH_AS(find_algorithm("rarts").initial_state(t.graph, t.space, no_table, 1),
                       doctest::Contains("--latency-weight 1 needs a latency table"), Error);
}
