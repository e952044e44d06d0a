#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <numbers>

#include <doctest/doctest.h>

#include "engine/autodiff/var.h"
#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/optim/clip.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/schedule.h"
#include "engine/optim/sgd.h"

using namespace cellgraph;

namespace {

Var param(const std::vector<float>& values, std::string name) {
  const int64_t n = static_cast<int64_t>(values.size());
  return Var(Tensor::from_vector({n}, values), true, std::move(name));
}

void set_grad(Var& p, const std::vector<float>& g) {
  p.set_grad(Tensor::from_vector(p.shape(), g));
}

std::vector<float> values(const Var& p) { return p.value().to_vector(); }

// The exact bit patterns, so +0/-0 and last-ulp changes count as changes.
std::vector<uint32_t> bits(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  std::vector<uint32_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

const Tensor& entry(const StateTensors& state, const std::string& key) {
  for (const auto& [k, t] : state)
    if (k == key) return t;
  FAIL("no state entry ", key);
  static Tensor none;
  return none;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("sgd: without momentum each step is w -= lr * (g + wd * w)") {
  Var p = param({1.0f, -2.0f}, "w");
  Sgd sgd({p}, SgdOptions{.lr = 0.1f, .momentum = 0.0f, .weight_decay = 0.01f});
  set_grad(p, {0.5f, 0.25f});
  sgd.step();
  // w1 = w0 - 0.1 * (g + 0.01 * w0)
  const float a1 = 1.0f - 0.1f * (0.5f + 0.01f * 1.0f);     // 0.949
  const float b1 = -2.0f - 0.1f * (0.25f + 0.01f * -2.0f);  // -2.023
  CHECK(values(p)[0] == doctest::Approx(a1).epsilon(1e-6));
  CHECK(values(p)[1] == doctest::Approx(b1).epsilon(1e-6));
  CHECK(a1 == doctest::Approx(0.949));
  set_grad(p, {-1.0f, 0.5f});
  sgd.step();
  CHECK(values(p)[0] == doctest::Approx(a1 - 0.1f * (-1.0f + 0.01f * a1)).epsilon(1e-6));
  CHECK(values(p)[1] == doctest::Approx(b1 - 0.1f * (0.5f + 0.01f * b1)).epsilon(1e-6));
  CHECK(sgd.state_tensors().size() == 1);  // only the step count: no buffer without momentum
}

TEST_CASE("sgd: the momentum buffer starts at the first gradient") {
  Var p = param({1.0f, -2.0f}, "w");
  Sgd sgd({p}, SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f});
  const float g[3][2] = {{0.5f, 0.25f}, {-1.0f, 0.5f}, {0.0f, 2.0f}};
  float w[2] = {1.0f, -2.0f}, buf[2] = {0, 0};
  for (int s = 0; s < 3; ++s) {
    set_grad(p, {g[s][0], g[s][1]});
    sgd.step();
    for (int k = 0; k < 2; ++k) {
      const float d = g[s][k] + 0.01f * w[k];
      buf[k] = s == 0 ? d : 0.9f * buf[k] + d;
      w[k] -= 0.1f * buf[k];
    }
    CHECK(values(p)[0] == doctest::Approx(w[0]).epsilon(1e-6));
    CHECK(values(p)[1] == doctest::Approx(w[1]).epsilon(1e-6));
    // Element 0 written out. Step 1: buf = 0.5 + 0.01 = 0.51, w = 1 - 0.051 = 0.949.
    // Step 2: d = -1 + 0.00949 = -0.99051, buf = 0.459 - 0.99051 = -0.53151, w = 1.002151.
    if (s == 0) CHECK(values(p)[0] == doctest::Approx(0.949).epsilon(1e-6));
    if (s == 1) CHECK(values(p)[0] == doctest::Approx(1.002151).epsilon(1e-6));
  }
  CHECK(entry(sgd.state_tensors(), "w/momentum").to_vector()[1] ==
        doctest::Approx(buf[1]).epsilon(1e-6));
  CHECK(entry(sgd.state_tensors(), "w/step").item() == 3.0f);
  CHECK(sgd.step_count(0) == 3);
  CHECK(sgd.momentum_buffer(0).to_vector()[0] == doctest::Approx(buf[0]).epsilon(1e-6));
}

TEST_CASE("sgd: nesterov steps along g + momentum * buf") {
  Var p = param({1.0f}, "w");
  Sgd sgd({p}, SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.0f, .nesterov = true});
  set_grad(p, {0.5f});
  sgd.step();
  // buf = 0.5, d = 0.5 + 0.9 * 0.5 = 0.95, w = 1 - 0.095 = 0.905
  CHECK(values(p)[0] == doctest::Approx(0.905).epsilon(1e-6));
  set_grad(p, {-1.0f});
  sgd.step();
  // buf = 0.45 - 1 = -0.55, d = -1 + 0.9 * -0.55 = -1.495, w = 0.905 + 0.1495 = 1.0545
  CHECK(values(p)[0] == doctest::Approx(1.0545).epsilon(1e-6));
}

TEST_CASE("adam: bias-corrected steps match hand arithmetic") {
  Var p = param({1.0f, -0.5f}, "alpha");
  const float lr = 0.01f, b1 = 0.5f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  Adam adam({p}, AdamOptions{lr, b1, b2, eps, wd});
  const float g[3][2] = {{0.2f, -0.4f}, {0.1f, 0.3f}, {-0.3f, 0.0f}};
  double w[2] = {1.0, -0.5}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int t = 1; t <= 3; ++t) {
    set_grad(p, {g[t - 1][0], g[t - 1][1]});
    adam.step();
    for (int k = 0; k < 2; ++k) {
      const double gk = g[t - 1][k] + wd * w[k];
      m[k] = b1 * m[k] + (1 - b1) * gk;
      v[k] = b2 * v[k] + (1 - b2) * gk * gk;
      const double m_hat = m[k] / (1 - std::pow(b1, t));
      const double v_hat = v[k] / (1 - std::pow(b2, t));
      w[k] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    CHECK(values(p)[0] == doctest::Approx(w[0]).epsilon(1e-6));
    CHECK(values(p)[1] == doctest::Approx(w[1]).epsilon(1e-6));
  }
  // Step 1 by hand: g = 0.2 + 0.1 = 0.3, m_hat = 0.3, v_hat = 0.09, so w moves by
  // lr * 0.3 / 0.3 = 0.01 (Adam's first step is lr * sign(g)).
  Var q = param({1.0f}, "q");
  Adam first({q}, AdamOptions{lr, b1, b2, eps, wd});
  set_grad(q, {0.2f});
  first.step();
  CHECK(values(q)[0] == doctest::Approx(0.99).epsilon(1e-6));
  CHECK(entry(adam.state_tensors(), "alpha/step").item() == 3.0f);
}

TEST_CASE("optim: a parameter without a gradient is left exactly untouched") {
  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    Var a = param({0.5f, -1.5f, 2.0f}, "a");
    Var b = param({1.0f, 0.25f}, "b");
    Var b_ref = param({1.0f, 0.25f}, "b");  // sees only the steps that reach b
    auto make = [&](std::vector<Var> ps) -> std::unique_ptr<Optimizer> {
      if (kind == 0)
        return std::make_unique<Sgd>(std::move(ps), SgdOptions{0.1f, 0.9f, 0.01f, true});
      return std::make_unique<Adam>(std::move(ps), AdamOptions{0.01f, 0.5f, 0.999f, 1e-8f, 0.1f});
    };
    auto opt = make({a, b});
    auto ref = make({b_ref});
    // Step 1: both have gradients.
    set_grad(a, {0.1f, 0.2f, 0.3f});
    set_grad(b, {-0.5f, 0.5f});
    set_grad(b_ref, {-0.5f, 0.5f});
    opt->step();
    ref->step();
    const auto b_value = bits(b.value());
    const StateTensors before = opt->state_tensors();
    // Step 2: b has no gradient; a changes, b and all of b's state keep their bits.
    opt->zero_grad();
    CHECK_FALSE(b.has_grad());
    set_grad(a, {0.1f, 0.2f, 0.3f});
    const auto a_value = bits(a.value());
    opt->step();
    CHECK(bits(a.value()) != a_value);
    CHECK(bits(b.value()) == b_value);
    const StateTensors after = opt->state_tensors();
    REQUIRE(after.size() == before.size());
    for (size_t i = 0; i < after.size(); ++i) {
      CAPTURE(after[i].first);
      if (after[i].first.starts_with("b/"))
        CHECK(bits(after[i].second) == bits(before[i].second));
      else
        CHECK(bits(after[i].second) != bits(before[i].second));
    }
    CHECK(entry(after, "b/step").item() == 1.0f);
    CHECK(entry(after, "a/step").item() == 2.0f);
    // Step 3: b resumes exactly as if step 2 never happened (its own step count).
    set_grad(b, {0.25f, -0.75f});
    set_grad(b_ref, {0.25f, -0.75f});
    opt->step();
    ref->step();
    CHECK(bits(b.value()) == bits(b_ref.value()));
  }
}

TEST_CASE("optim: zero_grad, learning rate and construction errors") {
  Var p = param({1.0f}, "w");
  Sgd sgd({p});
  CHECK(sgd.lr() == 0.025f);  // DARTS defaults
  CHECK(sgd.options().momentum == 0.9f);
  set_grad(p, {1.0f});
  sgd.zero_grad();
  CHECK_FALSE(p.has_grad());
  sgd.set_lr(0.5f);
  CHECK(sgd.lr() == 0.5f);
  CHECK_THROWS_AS(sgd.set_lr(-1.0f), Error);
  CHECK(Adam({p}).options().beta1 == 0.5f);
  CHECK(message_of([&] { Sgd({p, param({2.0f}, "w")}); }).find("'w'") != std::string::npos);
  CHECK_THROWS_AS(Sgd({p}, SgdOptions{.momentum = 0.0f, .nesterov = true}), Error);
  CHECK_THROWS_AS(Adam({p}, AdamOptions{.beta2 = 1.0f}), Error);
  // A zero gradient is a real gradient: weight decay moves the parameter.
  Var z = param({2.0f}, "z");
  Sgd decay({z}, SgdOptions{.lr = 0.5f, .momentum = 0.0f, .weight_decay = 0.1f});
  set_grad(z, {0.0f});
  decay.step();
  CHECK(values(z)[0] == doctest::Approx(2.0 - 0.5 * 0.1 * 2.0));
  if (backend_available(Device::cuda)) {
    // Buffers live on the parameter's device; the update is the backend's vector operation,
    // which the CUDA backend does not have yet.
    Var gpu(Tensor::zeros({2}, Device::cuda), true, "gpu.w");
    Sgd on_gpu({gpu});
    gpu.set_grad(Tensor::zeros({2}, Device::cuda));
    CHECK(message_of([&] { on_gpu.step(); }) ==
          "the cuda backend has no kernel for vector operation 'sgd_step'");
  }
  Var unnamed(Tensor::from_vector({1}, {3.0f}), true);
  Adam adam({p, unnamed});
  CHECK_THROWS_AS(Adam({unnamed, unnamed}), Error);
  CHECK(adam.param_key(1) == "param1");
}

TEST_CASE("clip: the global norm is returned and grads above it are scaled") {
  Var a = param({0, 0}, "a");
  Var b = param({0}, "b");
  Var none = param({7}, "none");  // no gradient: ignored, stays undefined
  set_grad(a, {3.0f, 0.0f});
  set_grad(b, {4.0f});
  const float norm = clip_grad_norm({a, b, none}, 1.0f);
  CHECK(norm == doctest::Approx(5.0));
  const double scale = 1.0 / (5.0 + 1e-6);
  CHECK(a.grad().to_vector()[0] == doctest::Approx(3.0 * scale).epsilon(1e-7));
  CHECK(b.grad().to_vector()[0] == doctest::Approx(4.0 * scale).epsilon(1e-7));
  CHECK_FALSE(none.has_grad());
  // Under (or at) the limit: nothing changes, bit for bit.
  set_grad(a, {0.3f, 0.0f});
  set_grad(b, {0.4f});
  const auto a_bits = bits(a.grad());
  CHECK(clip_grad_norm({a, b, none}, 5.0f) == doctest::Approx(0.5));
  CHECK(bits(a.grad()) == a_bits);
  CHECK(clip_grad_norm({none}, 1.0f) == 0.0f);
  CHECK_THROWS_AS(clip_grad_norm({a}, 0.0f), Error);
}

TEST_CASE("cosine: endpoints, midpoint and clamping past the end") {
  const CosineSchedule s(0.025f, 0.001f, 50);
  CHECK(s.lr_at(0) == doctest::Approx(0.025));
  CHECK(s.lr_at(25) == doctest::Approx(0.013));  // (0.025 + 0.001) / 2
  CHECK(s.lr_at(50) == doctest::Approx(0.001));
  CHECK(s.lr_at(80) == doctest::Approx(0.001));
  const double quarter = 0.001 + 0.024 * (1 + std::cos(std::numbers::pi / 4)) / 2;
  CHECK(s.lr_at(12) != s.lr_at(13));
  CHECK(CosineSchedule(0.025f, 0.001f, 4).lr_at(1) == doctest::Approx(quarter));
  Var p = param({1.0f}, "w");
  Sgd sgd({p});
  s.apply(sgd, 25);
  CHECK(sgd.lr() == doctest::Approx(0.013));
  CHECK_THROWS_AS(CosineSchedule(0.1f, 0.0f, 0), Error);
}

TEST_CASE("optim: state round-trips and bad state is a named error") {
  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    Var p = param({1.0f, 2.0f}, "cell.w");
    Var q = param({-1.0f}, "cell.b");
    auto make = [&](std::vector<Var> ps) -> std::unique_ptr<Optimizer> {
      if (kind == 0) return std::make_unique<Sgd>(std::move(ps), SgdOptions{});
      return std::make_unique<Adam>(std::move(ps), AdamOptions{});
    };
    auto opt = make({p, q});
    for (int s = 0; s < 2; ++s) {
      set_grad(p, {0.5f, -0.25f});
      if (s == 0)
        set_grad(q, {1.0f});
      else
        q.zero_grad();
      opt->step();
    }
    Var p2(p.value().clone(), true, "cell.w");
    Var q2(q.value().clone(), true, "cell.b");
    auto copy = make({p2, q2});
    const StateTensors state = opt->state_tensors();
    copy->load_state_tensors(state);
    set_grad(p, {0.1f, 0.2f});
    set_grad(q, {0.3f});
    set_grad(p2, {0.1f, 0.2f});
    set_grad(q2, {0.3f});
    opt->step();
    copy->step();
    CHECK(bits(p.value()) == bits(p2.value()));
    CHECK(bits(q.value()) == bits(q2.value()));

    const std::string buffer = kind == 0 ? "cell.w/momentum" : "cell.w/adam_m";
    StateTensors missing;
    for (const auto& e : state)
      if (e.first != buffer) missing.push_back(e);
    const auto before = copy->state_tensors();
    CHECK(message_of([&] { copy->load_state_tensors(missing, "ck.bin"); }).find(buffer) !=
          std::string::npos);
    StateTensors wrong = state;
    for (auto& e : wrong)
      if (e.first == buffer) e.second = Tensor::zeros({3});
    const std::string shape_msg = message_of([&] { copy->load_state_tensors(wrong, "ck.bin"); });
    CHECK(shape_msg.find(buffer) != std::string::npos);
    CHECK(shape_msg.find("ck.bin") != std::string::npos);
    StateTensors extra = state;
    extra.emplace_back("cell.z/step", Tensor::zeros({1}));
    CHECK(message_of([&] { copy->load_state_tensors(extra); }).find("cell.z/step") !=
          std::string::npos);
    StateTensors bad_step = state;
    for (auto& e : bad_step)
      if (e.first == "cell.b/step") e.second = Tensor::full({1}, 1.5f);
    CHECK(message_of([&] { copy->load_state_tensors(bad_step); }).find("cell.b/step") !=
          std::string::npos);
    // Failed loads leave the state as it was.
    const auto after = copy->state_tensors();
    for (size_t i = 0; i < after.size(); ++i)
      CHECK(bits(after[i].second) == bits(before[i].second));
  }
}
