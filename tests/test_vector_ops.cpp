// The backends' vector operations (engine/backends/vector_ops.h) against straightforward
// loops. The CPU results must equal the host loops they replaced bit for bit (checkpoints
// of runs before and after the move are compared that way), so each reference below is
// the replaced loop itself and every comparison is on bit patterns. Sizes on both sides
// of the OpenMP threshold (2^15 elements) run the serial and the parallel path.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/backends/vector_ops.h"
#include "engine/error.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "ops/ops.h"

using namespace cellgraph;

namespace {

constexpr int64_t kSizes[] = {37, 100003};

std::vector<float> random_values(int64_t n, uint64_t seed, float low = -2.0f, float high = 2.0f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(low, high);
  return v;
}

Tensor tensor_of(const std::vector<float>& v) {
  return Tensor::from_vector({static_cast<int64_t>(v.size())}, v);
}

std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

bool same_bits(const Tensor& t, const std::vector<float>& expected) {
  return bits(t.to_vector()) == bits(expected);
}

// Restores the default thread count when a test leaves.
struct ThreadsGuard {
  explicit ThreadsGuard(int threads) { set_num_threads(threads); }
  ~ThreadsGuard() { set_num_threads(0); }
};

}  // namespace

TEST_CASE("vector ops: sgd_step is the SGD loop, with and without momentum") {
  ThreadsGuard threads(2);
  for (const int64_t n : kSizes) {
    for (const bool nesterov : {false, true}) {
      for (const bool first : {false, true}) {
        CAPTURE(n);
        CAPTURE(nesterov);
        CAPTURE(first);
        std::vector<float> w = random_values(n, 1), buf = random_values(n, 2);
        const std::vector<float> g = random_values(n, 3);
        const Tensor tw = tensor_of(w), tbuf = tensor_of(buf);
        const SgdStep step{.lr = 0.025f,
                           .momentum = 0.9f,
                           .weight_decay = 3e-4f,
                           .nesterov = nesterov,
                           .first = first};
        vec::sgd_step(tw, tensor_of(g), tbuf, step);
        for (size_t k = 0; k < w.size(); ++k) {
          const float gk = g[k] + step.weight_decay * w[k];
          const float b = first ? gk : step.momentum * buf[k] + gk;
          buf[k] = b;
          w[k] -= step.lr * (nesterov ? gk + step.momentum * b : b);
        }
        CHECK(same_bits(tw, w));
        CHECK(same_bits(tbuf, buf));
      }
    }
    std::vector<float> w = random_values(n, 4);
    const std::vector<float> g = random_values(n, 5);
    const Tensor tw = tensor_of(w);
    vec::sgd_step(tw, tensor_of(g), Tensor(), SgdStep{.lr = 0.1f, .weight_decay = 0.01f});
    for (size_t k = 0; k < w.size(); ++k) w[k] -= 0.1f * (g[k] + 0.01f * w[k]);
    CHECK(same_bits(tw, w));
  }
}

TEST_CASE("vector ops: adam_step is the Adam loop") {
  ThreadsGuard threads(2);
  for (const int64_t n : kSizes) {
    std::vector<float> w = random_values(n, 6), m = random_values(n, 7);
    std::vector<float> v = random_values(n, 8, 0.0f, 1.0f);
    const std::vector<float> g = random_values(n, 9);
    const Tensor tw = tensor_of(w), tm = tensor_of(m), tv = tensor_of(v);
    const AdamStep s{.beta1 = 0.5f,
                     .beta2 = 0.999f,
                     .eps = 1e-8f,
                     .weight_decay = 1e-3f,
                     .step_size = static_cast<float>(3e-4 / (1.0 - 0.25)),
                     .bias2_sqrt = static_cast<float>(std::sqrt(1.0 - 0.999 * 0.999))};
    vec::adam_step(tw, tensor_of(g), tm, tv, s);
    for (size_t k = 0; k < w.size(); ++k) {
      const float gk = g[k] + s.weight_decay * w[k];
      m[k] = s.beta1 * m[k] + (1.0f - s.beta1) * gk;
      v[k] = s.beta2 * v[k] + (1.0f - s.beta2) * gk * gk;
      const float denom = std::sqrt(v[k]) / s.bias2_sqrt + s.eps;
      w[k] -= s.step_size * (m[k] / denom);
    }
    CHECK(same_bits(tw, w));
    CHECK(same_bits(tm, m));
    CHECK(same_bits(tv, v));
  }
}

TEST_CASE("vector ops: sgd_lookahead is DARTS' unrolled step, absent terms zero") {
  ThreadsGuard threads(2);
  const float lr = 0.025f, mom = 0.9f, wd = 3e-4f;
  for (const int64_t n : kSizes) {
    for (const bool with_grad : {false, true}) {
      for (const bool with_buffer : {false, true}) {
        CAPTURE(n);
        CAPTURE(with_grad);
        CAPTURE(with_buffer);
        std::vector<float> w = random_values(n, 10);
        const std::vector<float> g = random_values(n, 11), buf = random_values(n, 12);
        const Tensor tw = tensor_of(w);
        vec::sgd_lookahead(tw, with_grad ? tensor_of(g) : Tensor(),
                           with_buffer ? tensor_of(buf) : Tensor(), lr, mom, wd);
        for (size_t e = 0; e < w.size(); ++e) {
          const float step =
              (with_buffer ? mom * buf[e] : 0.0f) + (with_grad ? g[e] : 0.0f) + wd * w[e];
          w[e] -= lr * step;
        }
        CHECK(same_bits(tw, w));
      }
    }
  }
}

TEST_CASE("vector ops: sums of squares in double, parallel and sequential") {
  for (const int64_t n : kSizes) {
    CAPTURE(n);
    const std::vector<float> x = random_values(n, 13);
    double serial = 0;
    for (const float v : x) serial += double(v) * double(v);
    {
      // One thread: the OpenMP reduction is the serial loop.
      ThreadsGuard one(1);
      CHECK(vec::sum_squares(tensor_of(x)) == serial);
    }
    ThreadsGuard two(2);
    const double parallel = vec::sum_squares(tensor_of(x));
    if (n <= (1 << 15)) CHECK(parallel == serial);  // below the threshold: serial anyway
    CHECK(parallel == doctest::Approx(serial).epsilon(1e-12));
    CHECK(vec::sum_squares(tensor_of(x)) == parallel);  // fixed for a thread count
    // Sequential: one accumulator carried on from `start`, in element order.
    double carried = 0.75;
    for (const float v : x) carried += double(v) * double(v);
    CHECK(vec::sum_squares_sequential(tensor_of(x), 0.75) == carried);
    CHECK(vec::sum_squares_sequential(tensor_of(x), 0.0) == serial);
  }
  {
    // Eight threads: each sums its static share (OpenMP's partition: n / 8 each, the first
    // n % 8 one more), the partial sums added in thread order. Every call gives those bits;
    // OpenMP's reduction clause gave one of several (the order threads finished).
    ThreadsGuard eight(8);
    const int64_t n = 1000003, threads = 8;
    const std::vector<float> x = random_values(n, 20);
    double expected = 0;
    for (int64_t t = 0, begin = 0; t < threads; ++t) {
      const int64_t count = n / threads + (t < n % threads ? 1 : 0);
      double partial = 0;
      for (int64_t k = begin; k < begin + count; ++k)
        partial += double(x[size_t(k)]) * x[size_t(k)];
      expected += partial;
      begin += count;
    }
    const Tensor t = tensor_of(x);
    for (int run = 0; run < 100; ++run) REQUIRE(vec::sum_squares(t) == expected);
  }
  // A view is read through its elements.
  const Tensor m = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(vec::sum_squares(m.narrow(1, 1, 2)) == 4.0 + 9.0 + 25.0 + 36.0);
  CHECK(std::isnan(vec::sum_squares(tensor_of({1.0f, std::nanf("")}))));
}

TEST_CASE("vector ops: dot in double, per thread share, fixed for a thread count") {
  for (const int64_t n : kSizes) {
    CAPTURE(n);
    const std::vector<float> x = random_values(n, 30), y = random_values(n, 31);
    double exact = 0;
    for (size_t k = 0; k < x.size(); ++k) exact += double(x[k]) * double(y[k]);
    for (const int threads : {1, 2, 8}) {
      CAPTURE(threads);
      ThreadsGuard guard(threads);
      const double got = vec::dot(tensor_of(x), tensor_of(y));
      CHECK(got == doctest::Approx(exact).epsilon(1e-12));
      for (int run = 0; run < 20; ++run) REQUIRE(vec::dot(tensor_of(x), tensor_of(y)) == got);
    }
  }
  // A view is read through its elements; a NaN reaches the result.
  const Tensor m = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(vec::dot(m.narrow(1, 1, 2), tensor_of({1, 1, 1, 1})) == 2.0 + 3.0 + 5.0 + 6.0);
  CHECK(std::isnan(vec::dot(tensor_of({1.0f, std::nanf("")}), tensor_of({0.0f, 0.0f}))));
}

// NASP's dotted closing batch norms (sched/executor.cpp): the statistics and the running
// update are ops::batch_norm's bit for bit; the dot is sum g * (x * scale + shift) with the
// batch norm's float scale and shift, the normalised values not rounded to float, which the
// reference here computes in long double from the statistics (the same formulas; its sums'
// order differs from the kernel's by ~1e-16, far from moving a float). Against <g,
// batch_norm(x)> the dot may differ by that rounding alone. The same dot for 1 and 2
// threads, and on every run. Shapes with planes of 1, 7 and 64 values; with and without
// affine.
TEST_CASE("vector ops: batch_norm_dot is <g, batch_norm(x)> and updates the running statistics") {
  const Shape shapes[] = {{6, 3}, {4, 5, 1, 7}, {3, 2, 8, 8}};
  uint64_t seed = 40;
  for (const Shape& shape : shapes) {
    const int64_t channels = shape[1];
    const int64_t inner = shape.numel() / (shape[0] * channels);
    for (const bool affine : {false, true}) {
      double one_thread = 0;
      Rng rng(++seed);
      const Tensor x = normal_tensor(shape, 0.5f, 2.0f, rng);
      const Tensor g = normal_tensor(shape, 0.0f, 1.0f, rng);
      const Tensor gamma = affine ? normal_tensor({channels}, 1.0f, 0.3f, rng) : Tensor();
      const Tensor beta = affine ? normal_tensor({channels}, 0.0f, 0.3f, rng) : Tensor();
      const Tensor mean0 = normal_tensor({channels}, 0.0f, 1.0f, rng);
      const Tensor var0 = uniform_tensor({channels}, 0.5f, 2.0f, rng);
      BatchNormAttrs attrs;
      attrs.momentum = 0.25f;
      for (const int threads : {1, 2}) {
        CAPTURE(shape.str());
        CAPTURE(affine);
        CAPTURE(threads);
        ThreadsGuard guard(threads);
        const Var rm_op(mean0.clone()), rv_op(var0.clone());
        const Var y = ops::batch_norm(Var(x), affine ? Var(gamma) : Var(),
                                      affine ? Var(beta) : Var(), rm_op, rv_op, attrs);
        const std::vector<float> xv = x.to_vector(), gv = g.to_vector(), yv = y.value().to_vector();
        long double exact = 0, magnitude = 0, rounding = 0, of_outputs = 0;
        for (int64_t c = 0; c < channels; ++c) {
          double sum = 0, sq = 0;
          std::vector<size_t> at;
          for (int64_t b = 0; b < shape[0]; ++b)
            for (int64_t k = 0; k < inner; ++k)
              at.push_back(size_t((b * channels + c) * inner + k));
          for (const size_t e : at) {
            sum += double(xv[e]);
            sq += double(xv[e]) * double(xv[e]);
          }
          const double m = sum / double(at.size());
          const float mean = float(m);
          const float var = float(std::max(sq / double(at.size()) - m * m, 0.0));
          const float inv = 1.0f / std::sqrt(var + attrs.eps);
          const float scale = affine ? gamma.to_vector()[size_t(c)] * inv : inv;
          const float shift = (affine ? beta.to_vector()[size_t(c)] : 0.0f) - mean * scale;
          for (const size_t e : at) {
            const long double value = (long double)xv[e] * scale + shift;
            exact += gv[e] * value;
            magnitude += std::fabs(gv[e] * value);
            rounding +=
                std::fabs(gv[e]) * (std::fabs((long double)xv[e] * scale) + std::fabs(shift));
            of_outputs += double(gv[e]) * double(yv[e]);
          }
        }
        const Tensor rm = mean0.clone(), rv = var0.clone();
        reset_kernel_counts();
        const double got =
            vec::batch_norm_dot(x, gamma, beta, rm, rv, attrs.momentum, attrs.eps, g);
        CHECK(std::fabs((long double)got - exact) <= 1e-12L * magnitude);
        // batch_norm's outputs are each rounded to float once (and maybe fused): 2^-22 bounds it.
        CHECK(std::fabs((long double)got - of_outputs) <= rounding / (1 << 22));
        CHECK(same_bits(rm, rm_op.value().to_vector()));
        CHECK(same_bits(rv, rv_op.value().to_vector()));
        CHECK(kernel_counts().forward[static_cast<size_t>(OpKind::batch_norm)] == 1);
        if (threads == 1) one_thread = got;
        CHECK(got == one_thread);
        for (int run = 0; run < 5; ++run) {
          const Tensor rm2 = mean0.clone(), rv2 = var0.clone();
          REQUIRE(vec::batch_norm_dot(x, gamma, beta, rm2, rv2, attrs.momentum, attrs.eps, g) ==
                  got);
        }
      }
    }
  }
  // A channel with one value has no batch variance.
  const Tensor one = Tensor::zeros({1, 2});
  CHECK_THROWS_WITH_AS(vec::batch_norm_dot(one, {}, {}, Tensor::zeros({2}), Tensor::full({2}, 1.0f),
                                           0.1f, 1e-5f, one),
                       doctest::Contains("more than one value per channel"), Error);
}

TEST_CASE("vector ops: all_finite, scale, axpy, difference quotient, clamp") {
  ThreadsGuard threads(2);
  const float inf = std::numeric_limits<float>::infinity();
  for (const int64_t n : kSizes) {
    CAPTURE(n);
    std::vector<float> x = random_values(n, 14);
    CHECK(vec::all_finite(tensor_of(x)));
    for (const float bad : {inf, -inf, std::nanf("")}) {
      std::vector<float> y = x;
      y[y.size() - 1] = bad;
      CHECK_FALSE(vec::all_finite(tensor_of(y)));
    }

    std::vector<float> s = x;
    const Tensor ts = tensor_of(s);
    vec::scale(ts, 0.3f);
    for (float& v : s) v *= 0.3f;
    CHECK(same_bits(ts, s));

    // y -= lr * g, written as axpy(-lr, g, y): the same bits as the subtraction.
    std::vector<float> y = random_values(n, 15);
    const std::vector<float> g = random_values(n, 16);
    const Tensor ty = tensor_of(y);
    vec::axpy(-0.37f, tensor_of(g), ty);
    for (size_t i = 0; i < y.size(); ++i) y[i] -= 0.37f * g[i];
    CHECK(same_bits(ty, y));

    const std::vector<float> u = random_values(n, 17), v = random_values(n, 18);
    for (const bool with_u : {false, true}) {
      for (const bool with_v : {false, true}) {
        std::vector<float> d = random_values(n, 19);
        const Tensor td = tensor_of(d);
        vec::subtract_difference_quotient(td, 0.025f, with_u ? tensor_of(u) : Tensor(),
                                          with_v ? tensor_of(v) : Tensor(), 2.0f * 0.013f);
        for (size_t e = 0; e < d.size(); ++e)
          d[e] -= 0.025f * ((with_u ? u[e] : 0.0f) - (with_v ? v[e] : 0.0f)) / (2.0f * 0.013f);
        CHECK(same_bits(td, d));
      }
    }

    std::vector<float> c = x;
    c[0] = std::nanf("");
    const Tensor tc = tensor_of(c);
    vec::clamp(tc, 0.0f, 1.0f);
    for (float& e : c) e = std::clamp(e, 0.0f, 1.0f);
    CHECK(same_bits(tc, c));
    CHECK(std::isnan(tc.to_vector()[0]));
  }
  CHECK(vec::all_finite(Tensor()));
}

namespace {
// A backend with memory but no vector operations: what the CUDA backend is today, testable
// without a GPU.
class HostMemory final : public RawAllocator {
 public:
  void* allocate(size_t bytes) override { return ::operator new(bytes); }
  void deallocate(void* ptr) override { ::operator delete(ptr); }
};

class BareBackend final : public Backend {
 public:
  BareBackend() : Backend(std::make_unique<HostMemory>()) {}
  Device device() const override { return Device::cuda; }
  void fill(float*, int64_t, float) override {}
  void copy_between(float*, Device, const float*, Device, size_t) override {}
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST_CASE("vector ops: a backend without them names the missing operation") {
  BareBackend bare;
  const Tensor t = Tensor::zeros({3});
  auto missing = [](const char* name) {
    return "the cuda backend has no kernel for vector operation '" + std::string(name) + "'";
  };
  CHECK(message_of([&] { bare.sgd_step(t, t, t, {}); }) == missing("sgd_step"));
  CHECK(message_of([&] { bare.adam_step(t, t, t, t, {}); }) == missing("adam_step"));
  CHECK(message_of([&] { bare.sgd_lookahead(t, t, t, 1, 1, 1); }) == missing("sgd_lookahead"));
  CHECK(message_of([&] { bare.sum_squares(t); }) == missing("sum_squares"));
  CHECK(message_of([&] { bare.sum_squares_sequential(t, 0); }) ==
        missing("sum_squares_sequential"));
  CHECK(message_of([&] { bare.all_finite(t); }) == missing("all_finite"));
  CHECK(message_of([&] { bare.scale(t, 2); }) == missing("scale"));
  CHECK(message_of([&] { bare.axpy(1, t, t); }) == missing("axpy"));
  CHECK(message_of([&] { bare.subtract_difference_quotient(t, 1, t, t, 1); }) ==
        missing("subtract_difference_quotient"));
  CHECK(message_of([&] { bare.clamp(t, 0, 1); }) == missing("clamp"));
  CHECK(message_of([&] { bare.dot(t, t); }) == missing("dot"));
  CHECK(message_of([&] { bare.batch_norm_dot(t, {}, {}, t, t, 0.1f, 1e-5f, t); }) ==
        missing("batch_norm_dot"));

  if (!backend_available(Device::cuda)) {
    MESSAGE("no CUDA device available (or built without CUDA): the CUDA checks are skipped");
    return;
  }
  // The CUDA backend has none of them yet; vec:: reaches it by the tensors' device, and
  // refuses tensors on two devices.
  const Tensor gpu = Tensor::zeros({3}, Device::cuda);
  CHECK(message_of([&] { vec::scale(gpu, 2.0f); }) == missing("scale"));
  CHECK(message_of([&] { vec::sum_squares(gpu); }) == missing("sum_squares"));
  CHECK(message_of([&] { vec::axpy(1.0f, t, gpu); }) ==
        "axpy: tensors on cuda and cpu; expected one device");
}
