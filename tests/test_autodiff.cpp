// Reverse-mode autodiff over the CPU kernels: gradient accumulation where values fan out,
// chains of ops, what gets recorded, NoGradGuard, multi-root backward, and the release of
// saved tensors once a node's backward has run.
#include <cmath>
#include <functional>
#include <vector>

#include <doctest/doctest.h>

#include "engine/autodiff/var.h"
#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::random;

// Central differences of a scalar function of one tensor, in double.
std::vector<double> numeric_gradient(const Tensor& x, const std::function<float(const Var&)>& f,
                                     float eps = 1e-2f) {
  Tensor probe = x.clone();
  std::vector<double> g(size_t(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    float* p = probe.data() + i;
    const float saved = *p;
    *p = saved + eps;
    const double up = f(Var(probe));
    *p = saved - eps;
    const double down = f(Var(probe));
    *p = saved;
    g[size_t(i)] = (up - down) / (2.0 * double(eps));
  }
  return g;
}
}  // namespace

TEST_CASE("autodiff: add(x, x) accumulates a gradient of 2") {
  const Var x(Tensor::from_vector({3}, {1, 2, 3}), true);
  ops::sum(ops::add(x, x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{2, 2, 2});
}

TEST_CASE("autodiff: a diamond x -> a, b -> add sums both paths") {
  // y = sum(x * 3 + tanh(x)): dy/dx = 3 + (1 - tanh(x)^2).
  const Tensor xs = random({2, 3}, 1);
  const Var x(xs, true);
  const Var a = ops::scale(x, Var(Tensor::from_vector({1}, {3.0f})));
  const Var b = ops::tanh(x);
  ops::sum(ops::add(a, b)).backward();
  const std::vector<float> in = xs.to_vector(), g = x.grad().to_vector();
  for (size_t i = 0; i < in.size(); ++i) {
    const double t = std::tanh(double(in[i]));
    CHECK(g[i] == doctest::Approx(3.0 + 1.0 - t * t).epsilon(1e-5));
  }
}

TEST_CASE("autodiff: many uses of one value accumulate in place correctly") {
  // x feeds five consumers with distinct gradients; the accumulated sum must be exact.
  const Var x(Tensor::zeros({4}), true);
  std::vector<Var> terms;
  for (int k = 1; k <= 5; ++k)
    terms.push_back(ops::scale(x, Var(Tensor::from_vector({1}, {float(k)}))));
  Var total = terms[0];
  for (size_t k = 1; k < terms.size(); ++k) total = ops::add(total, terms[k]);
  ops::sum(total).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{15, 15, 15, 15});
  // A second backward on a fresh graph adds to the leaf's existing gradient.
  ops::sum(ops::negate(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{14, 14, 14, 14});
}

TEST_CASE("autodiff: a chain linear -> relu -> linear -> cross_entropy matches differences") {
  // Tolerance: atol 1e-3 + rtol 1e-2 as in the op gradchecks. relu's kink is avoided: a
  // step of 1e-2 in x moves a pre-activation by at most 1e-2 * sum_k |w1| <= 0.04 (|w| <= 1,
  // 4 features), so every pre-activation is required to be farther than 0.05 from zero.
  const Tensor w1 = random({5, 4}, 3), b1 = random({5}, 4), w2 = random({3, 5}, 5);
  const Tensor labels = Tensor::from_vector({2}, {2, 0});
  const auto loss = [&](const Var& x) {
    const Var h = ops::relu(ops::linear(x, Var(w1), Var(b1)));
    return ops::cross_entropy(ops::linear(h, Var(w2)), Var(labels), 0.1f).value().item();
  };
  const Tensor xs = random({2, 4}, 6);
  {
    const Tensor pre = ops::linear(Var(xs), Var(w1), Var(b1)).value();
    for (float v : pre.to_vector()) REQUIRE(std::fabs(v) > 0.05f);
  }
  const Var x(xs, true);
  const Var h = ops::relu(ops::linear(x, Var(w1), Var(b1)));
  ops::cross_entropy(ops::linear(h, Var(w2)), Var(labels), 0.1f).backward();
  const std::vector<double> numeric = numeric_gradient(xs, loss);
  const std::vector<float> analytic = x.grad().to_vector();
  for (size_t i = 0; i < numeric.size(); ++i)
    CHECK(std::fabs(analytic[i] - numeric[i]) <= 1e-3 + 1e-2 * std::fabs(numeric[i]));
}

TEST_CASE("autodiff: requires_grad propagates, nothing is recorded without it") {
  const Var plain(random({2, 2}, 7));
  const Var y = ops::relu(plain);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.is_leaf());

  const Var w(random({2, 2}, 8), true);
  const Var z = ops::mul(plain, w);
  CHECK(z.requires_grad());
  CHECK_FALSE(z.is_leaf());
  CHECK(ops::relu(z).requires_grad());

  // Only a non-differentiable input wants a gradient: no node.
  const Var indices(Tensor::from_vector({1}, {1}), true);
  const Var e = ops::embedding(Var(random({3, 2}, 9)), indices);
  CHECK_FALSE(e.requires_grad());
  CHECK(e.is_leaf());
}

TEST_CASE("autodiff: NoGradGuard records nothing and restores the previous state") {
  const Var x(random({3}, 10), true);
  CHECK(grad_enabled());
  {
    NoGradGuard outer;
    {
      NoGradGuard inner;
      CHECK_FALSE(ops::tanh(x).requires_grad());
    }
    CHECK_FALSE(grad_enabled());  // the inner guard restores "disabled", not "enabled"
    const Var y = ops::add(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(grad_enabled());
  CHECK(ops::tanh(x).requires_grad());
}

TEST_CASE("autodiff: a leaf's gradient is undefined until a backward reaches it") {
  Var x(random({2}, 11), true);
  const Var unused(random({2}, 12), true);
  const Var y = ops::sum(ops::mul(x, x));
  CHECK_FALSE(x.has_grad());
  y.backward();
  CHECK(x.has_grad());
  CHECK_FALSE(unused.has_grad());
  x.zero_grad();
  CHECK_FALSE(x.has_grad());
}

TEST_CASE("autodiff: multi-root backward seeds every output of split") {
  const Var x(Tensor::zeros({1, 3, 2}), true);
  const std::vector<Var> parts = ops::split(x, {1, 2});
  backward(parts,
           {Tensor::from_vector({1, 1, 2}, {1, 2}), Tensor::from_vector({1, 2, 2}, {3, 4, 5, 6})});
  CHECK(x.grad().to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("autodiff: multi-root backward sums roots that share a node") {
  // y is a root twice (its seeds are summed before its node runs); z is a second branch.
  const Var x(Tensor::from_vector({2}, {1, 2}), true);
  const Var y = ops::negate(x);
  const Var z = ops::scale(x, Var(Tensor::from_vector({1}, {4.0f})));
  backward({y, y, z}, {Tensor::full({2}, 1.0f), Tensor::full({2}, 2.0f), Tensor::full({2}, 1.0f)});
  CHECK(x.grad().to_vector() == std::vector<float>{1, 1});  // -1 - 2 + 4
}

TEST_CASE("autodiff: saved tensors are released after backward") {
  const Var x(random({2, 3}, 13), true);
  const Var a = ops::tanh(x);    // saves its output
  const Var b = ops::mul(a, a);  // saves both inputs
  const Var loss = ops::cross_entropy(b, Var(Tensor::from_vector({2}, {0, 2})));  // saves probs
  const std::shared_ptr<Node> tanh_node = a.impl()->producer;
  const std::shared_ptr<Node> mul_node = b.impl()->producer;
  const std::shared_ptr<Node> loss_node = loss.impl()->producer;
  REQUIRE(tanh_node != nullptr);
  CHECK_FALSE(tanh_node->saved_outputs.empty());
  CHECK_FALSE(mul_node->saved_inputs.empty());
  CHECK(loss_node->saved.size() == 1);
  loss.backward();
  for (const auto& node : {tanh_node, mul_node, loss_node}) {
    CHECK(node->released);
    CHECK(node->saved.empty());
    CHECK(node->saved_inputs.empty());
    CHECK(node->saved_outputs.empty());
  }
  CHECK(x.has_grad());
}

TEST_CASE("autodiff: a shape mismatch inside a recorded graph is a user error") {
  const Var x(random({2, 3}, 14), true);
  CHECK_THROWS_AS(ops::add(ops::relu(x), Var(Tensor::zeros({3, 2}))), Error);
  CHECK_THROWS_AS(ops::embedding(x, Var(Tensor::from_vector({1}, {2}))), Error);  // V = 2
}
