// batch_norm: the op cases (tests/support/op_harness.h: every backend against the CPU,
// running statistics included, and the CPU's gradients against finite differences), and on
// the CPU training and eval, affine on and off, [N,C,H,W] and [N,C], against a
// double-precision reference; the running-statistics update against numbers worked out by
// hand; input validation.
#include <cmath>
#include <sstream>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "ops/ops.h"
#include "tests/support/bits.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::check_close;
using testing::random;
constexpr double kTolerance = 1e-4;  // check_close against the reference loops

constexpr double kEps = 1e-5;

struct BnReference {
  std::vector<double> y, dx, dgamma, dbeta, mean, var;  // var: biased, as used to normalise
};

// training: batch statistics and the full backward through them; eval: the given running
// statistics and the backward of a fixed affine map. gamma empty = affine off.
BnReference reference(const Shape& shape, const std::vector<float>& x,
                      const std::vector<float>& gamma, const std::vector<float>& beta,
                      const std::vector<float>& rmean, const std::vector<float>& rvar,
                      const std::vector<float>& dy, bool training) {
  const int64_t n = shape[0], c = shape[1];
  const int64_t plane = shape.rank() == 4 ? shape[2] * shape[3] : 1;
  const double count = double(n * plane);
  auto at = [&](int64_t i, int64_t ch, int64_t k) { return size_t((i * c + ch) * plane + k); };
  BnReference r;
  r.y.resize(x.size());
  r.dx.resize(x.size());
  for (int64_t ch = 0; ch < c; ++ch) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < plane; ++k) mean += x[at(i, ch, k)];
    mean /= count;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < plane; ++k) var += std::pow(x[at(i, ch, k)] - mean, 2);
    var /= count;
    r.mean.push_back(mean);
    r.var.push_back(var);
    if (!training) {
      mean = rmean[size_t(ch)];
      var = rvar[size_t(ch)];
    }
    const double inv = 1.0 / std::sqrt(var + kEps);
    const double g = gamma.empty() ? 1.0 : gamma[size_t(ch)];
    const double b = beta.empty() ? 0.0 : beta[size_t(ch)];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < plane; ++k) {
        const size_t e = at(i, ch, k);
        const double xhat = (x[e] - mean) * inv;
        r.y[e] = g * xhat + b;
        sum_dy += dy[e];
        sum_dy_xhat += dy[e] * xhat;
      }
    r.dgamma.push_back(sum_dy_xhat);
    r.dbeta.push_back(sum_dy);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < plane; ++k) {
        const size_t e = at(i, ch, k);
        const double xhat = (x[e] - mean) * inv;
        r.dx[e] = training ? g * inv * (dy[e] - sum_dy / count - xhat * sum_dy_xhat / count)
                           : g * inv * dy[e];
      }
  }
  return r;
}

// Runs forward + backward (every gradient wanted) and compares with the reference.
void check_case(const Shape& shape, bool training, bool affine) {
  const int64_t c = shape[1];
  // Per-channel offsets and scales so the statistics differ between channels.
  Tensor xt = random(shape, 1, -1.5f, 2.5f);
  Var x(xt, true);
  Var gamma = affine ? Var(random({c}, 2, 0.5f, 1.5f), true) : Var();
  Var beta = affine ? Var(random({c}, 3), true) : Var();
  const Tensor rm = random({c}, 4, -0.5f, 0.5f), rv = random({c}, 5, 0.5f, 2.0f);
  const std::vector<float> rm0 = rm.to_vector(), rv0 = rv.to_vector();
  BatchNormAttrs attrs;
  attrs.training = training;
  Var y = ops::batch_norm(x, gamma, beta, Var(rm), Var(rv), attrs);
  const Tensor dy = random(shape, 6);
  y.backward(dy);

  const std::vector<float> gv = affine ? gamma.value().to_vector() : std::vector<float>{};
  const std::vector<float> bv = affine ? beta.value().to_vector() : std::vector<float>{};
  const BnReference r =
      reference(shape, xt.to_vector(), gv, bv, rm0, rv0, dy.to_vector(), training);
  check_close("y", y.value().to_vector(), r.y, kTolerance);
  check_close("dx", x.grad().to_vector(), r.dx, kTolerance);
  if (affine) {
    check_close("dgamma", gamma.grad().to_vector(), r.dgamma, kTolerance);
    check_close("dbeta", beta.grad().to_vector(), r.dbeta, kTolerance);
  }
  // Running statistics move only in training, by PyTorch's rule (unbiased variance).
  std::vector<double> want_rm(rm0.begin(), rm0.end()), want_rv(rv0.begin(), rv0.end());
  if (training) {
    const int64_t per_channel = xt.numel() / c;  // the values per channel: an exact division
    const double n = double(per_channel);
    for (size_t i = 0; i < size_t(c); ++i) {
      want_rm[i] = 0.9 * rm0[i] + 0.1 * r.mean[i];
      want_rv[i] = 0.9 * rv0[i] + 0.1 * r.var[i] * n / (n - 1);
    }
  }
  check_close("running_mean", rm.to_vector(), want_rm, kTolerance);
  check_close("running_var", rv.to_vector(), want_rv, kTolerance);
}

testing::GradCheck bn_spec(const Shape& shape, bool training, bool affine) {
  const int64_t c = shape[1];
  BatchNormAttrs attrs;
  attrs.training = training;
  testing::GradCheck spec;
  spec.kind = OpKind::batch_norm;
  spec.attrs = attrs;
  spec.inputs = {random(shape, 21, -1.5f, 2.5f), affine ? random({c}, 22, 0.5f, 1.5f) : Tensor(),
                 affine ? random({c}, 23) : Tensor(), random({c}, 24, -0.5f, 0.5f),
                 random({c}, 25, 0.5f, 2.0f)};
  // Training: y is smooth in x but not linear, the truncation error is eps^2/6 times a third
  // derivative of order 1/sigma^3 ~ 1 here (inputs of spread ~1), i.e. ~2e-5; float noise
  // in L (~1e-6 over a few hundred outputs of size ~1) divided by 2 eps gives ~1e-4.
  // Eval: y is affine in x, gamma and beta, only the noise remains. atol 2e-3 and rtol
  // 1e-2 leave a 10x margin and still catch a dropped mean or variance term (O(0.1)).
  spec.eps = 1e-2f;
  spec.atol = 2e-3f;
  spec.rtol = 1e-2f;
  return spec;
}

std::vector<testing::OpCase> batch_norm_cases() {
  return {
      {"training, affine, NCHW", bn_spec({3, 2, 3, 3}, true, true)},
      {"training, no affine, NCHW", bn_spec({3, 2, 3, 3}, true, false)},
      {"training, affine, NC", bn_spec({8, 3}, true, true)},
      {"training, no affine, NC", bn_spec({8, 3}, true, false)},
      {"eval, affine, NCHW", bn_spec({3, 2, 3, 3}, false, true)},
      {"eval, no affine, NCHW", bn_spec({3, 2, 3, 3}, false, false)},
      {"eval, affine, NC", bn_spec({8, 3}, false, true)},
  };
}

}  // namespace

CELLGRAPH_OP_CASES("batch_norm", batch_norm_cases)

TEST_CASE("batch_norm: training forward and backward match the reference (affine)") {
  check_case({4, 3, 3, 3}, true, true);
  check_case({6, 5}, true, true);  // [N,C]
}

TEST_CASE("batch_norm: training without affine matches the reference") {
  check_case({4, 3, 3, 3}, true, false);
  check_case({6, 5}, true, false);
}

// Planes of 16 values and more take the channel loops' vector part (pairs of 8 lanes),
// with a tail of single values on 5 x 7.
TEST_CASE("batch_norm: training on planes of 64 and 35 values matches the reference") {
  check_case({3, 2, 8, 8}, true, false);
  check_case({2, 3, 5, 7}, true, true);
}

// Planes of 256 values and more, a channel's tensors at most 512 KiB and a channel per thread
// (8 channels: up to 8 threads): the forward normalises each channel right after its
// statistics, the backward takes a channel at a time; past 512 KiB (136 images of 32 x 32:
// x 544 KiB a channel) both take whole-tensor passes.
TEST_CASE(
    "batch_norm: training a channel at a time on 16 x 16 and 32 x 32 planes matches the "
    "reference") {
  check_case({3, 8, 16, 16}, true, true);
  check_case({2, 8, 32, 32}, true, false);
  check_case({136, 1, 32, 32}, true, true);
}

TEST_CASE("batch_norm: eval uses the running statistics, forward and backward") {
  check_case({3, 4, 3, 3}, false, true);
  check_case({3, 4, 3, 3}, false, false);
  check_case({5, 3}, false, true);
}

TEST_CASE("batch_norm: running statistics follow PyTorch's update, worked by hand") {
  // x is [2, 2, 1, 2]: channel 0 holds 1, 2, 3, 4; channel 1 holds 0, 0, 2, 2.
  const Tensor x = Tensor::from_vector({2, 2, 1, 2}, {1, 2, 0, 0, 3, 4, 2, 2});
  const Tensor rm = Tensor::from_vector({2}, {0.0f, 0.5f});
  const Tensor rv = Tensor::from_vector({2}, {1.0f, 2.0f});
  BatchNormAttrs attrs;
  attrs.momentum = 0.1f;
  const Var y = ops::batch_norm(Var(x), {}, {}, Var(rm), Var(rv), attrs);
  // Channel 0: mean 2.5, biased var 1.25, unbiased 5/3.
  //   running_mean = 0.9 * 0 + 0.1 * 2.5 = 0.25; running_var = 0.9 * 1 + 0.1 * 5/3.
  // Channel 1: mean 1, biased var 1, unbiased 4/3.
  //   running_mean = 0.9 * 0.5 + 0.1 * 1 = 0.55; running_var = 0.9 * 2 + 0.1 * 4/3.
  const std::vector<float> m = rm.to_vector(), v = rv.to_vector();
  CHECK(m[0] == doctest::Approx(0.25).epsilon(1e-6));
  CHECK(m[1] == doctest::Approx(0.55).epsilon(1e-6));
  CHECK(v[0] == doctest::Approx(0.9 + 0.1 * 5.0 / 3.0).epsilon(1e-6));
  CHECK(v[1] == doctest::Approx(1.8 + 0.1 * 4.0 / 3.0).epsilon(1e-6));
  // Normalised with the biased variance: channel 0's 1 -> -1.5 / sqrt(1.25 + eps).
  const std::vector<float> out = y.value().to_vector();
  CHECK(out[0] == doctest::Approx(-1.5 / std::sqrt(1.25 + kEps)).epsilon(1e-5));
  CHECK(out[2] == doctest::Approx(-1.0 / std::sqrt(1.0 + kEps)).epsilon(1e-5));

  // A second step compounds; momentum comes from the attributes.
  attrs.momentum = 0.5f;
  ops::batch_norm(Var(x), {}, {}, Var(rm), Var(rv), attrs);
  CHECK(rm.to_vector()[0] == doctest::Approx(0.5 * 0.25 + 0.5 * 2.5).epsilon(1e-6));
  CHECK(rv.to_vector()[1] ==
        doctest::Approx(0.5 * (1.8 + 0.1 * 4.0 / 3.0) + 0.5 * 4.0 / 3.0).epsilon(1e-6));

  // Eval leaves them alone.
  attrs.training = false;
  const std::vector<float> before = rv.to_vector();
  ops::batch_norm(Var(x), {}, {}, Var(rm), Var(rv), attrs);
  CHECK(rv.to_vector() == before);
}

TEST_CASE("batch_norm: only the wanted gradients are produced") {
  // 2 x 2 planes run the channel loops, 5 x 5 the plane loops, 16 x 16 a channel at a time
  // (batch_norm.cpp).
  for (const Shape& shape : {Shape{4, 3, 2, 2}, Shape{4, 3, 5, 5}, Shape{4, 3, 16, 16}}) {
    CAPTURE(shape.str());
    const Tensor xt = random(shape, 1), gt = random({3}, 2, 0.5f, 1.5f), bt = random({3}, 3);
    const Tensor dy = random(shape, 6);
    const std::vector<float> rm(3, 0.0f), rv(3, 1.0f);
    const BnReference r = reference(shape, xt.to_vector(), gt.to_vector(), bt.to_vector(), rm, rv,
                                    dy.to_vector(), true);
    auto run = [&](bool wx, bool wg, bool wb) {
      Var x(xt, wx), g(gt, wg), b(bt, wb);
      ops::batch_norm(x, g, b, Var(Tensor::zeros({3})), Var(Tensor::full({3}, 1.0f))).backward(dy);
      CHECK(x.has_grad() == wx);
      CHECK(g.has_grad() == wg);
      CHECK(b.has_grad() == wb);
      if (wx) check_close("dx", x.grad().to_vector(), r.dx, kTolerance);
      if (wg) check_close("dgamma", g.grad().to_vector(), r.dgamma, kTolerance);
      if (wb) check_close("dbeta", b.grad().to_vector(), r.dbeta, kTolerance);
    };
    run(true, false, false);  // dx only, affine (backward_data)
    run(false, true, false);  // dgamma only
    run(true, false, true);   // dbeta and dx
  }
}

// The plane loops add each channel's per-plane sums in image order: the same bits at any
// thread count.
// So do the loops a channel at a time (16 x 16 planes).
TEST_CASE("batch_norm: the training backward gives the same bits at 1, 2 and 3 threads") {
  for (const Shape& shape : {Shape{5, 7, 6, 6}, Shape{5, 7, 16, 16}}) {
    CAPTURE(shape.str());
    const Tensor xt = random(shape, 11), dy = random(shape, 12);
    std::vector<std::vector<float>> dx;
    for (const int threads : {1, 2, 3}) {
      set_num_threads(threads);
      Var x(xt, true);
      ops::batch_norm(x, {}, {}, Var(Tensor::zeros({7})), Var(Tensor::full({7}, 1.0f)))
          .backward(dy);
      dx.push_back(x.grad().to_vector());
    }
    set_num_threads(0);  // the default again
    CHECK(testing::same_bits(dx[0], dx[1]));
    CHECK(testing::same_bits(dx[0], dx[2]));
  }
}

TEST_CASE("batch_norm: invalid calls throw cellgraph::Error") {
  const Var x(random({2, 3, 4, 4}, 1));
  const Var c3(Tensor::full({3}, 1.0f)), c2(Tensor::full({2}, 1.0f));
  CHECK_THROWS_AS(ops::batch_norm(x, c2, c2, c3, c3), Error);  // gamma/beta length
  CHECK_THROWS_AS(ops::batch_norm(x, {}, {}, c2, c3), Error);  // running_mean length
  CHECK_THROWS_AS(ops::batch_norm(x, c3, {}, c3, c3), Error);  // gamma without beta
  CHECK_THROWS_AS(ops::batch_norm(Var(random({2, 3, 4}, 1)), {}, {}, c3, c3), Error);  // rank
  // Training statistics of a single value per channel are undefined (n - 1 = 0).
  CHECK_THROWS_AS(ops::batch_norm(Var(random({1, 3}, 1)), {}, {}, c3, c3), Error);
}
