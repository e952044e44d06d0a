// Where a value has several readers, the backward sums their gradients. Kernels that can
// add into the gradient already there (engine/backends/kernel.h, BackwardCall::accumulate:
// conv2d, max_pool, avg_pool, slice, concat, weighted_sum on the CPU) do so as they write, the
// others' gradients are added by the autodiff. Either way the sum must be that of each reader's
// gradient alone, on every path of those kernels: the depthwise loops (stride 1 "same",
// unpadded, dilated), the column-phase loops (strided depthwise), oneDNN's passes through a
// scratch (3x3, 1x1), the 1x1 data gradient's register tiles (planes of 1024 pixels), the
// pooling loops (byte and int32 positions), slices (every second element and any other
// steps), concats (plain and rectifying), a weight and a coefficient matrix read twice.
#include <cstdint>
#include <functional>
#include <vector>

#include <doctest/doctest.h>

#include "engine/autodiff/var.h"
#include "engine/backends/backend.h"
#include "ops/ops.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::check_close;
using testing::random;

using Reader = std::function<Var(const Var&)>;

// The readers of x [2, 16, 20, 32] (rows of 32: the depthwise row tiles where padded); `w` is read
// by two of them.
std::vector<Reader> readers(const Var& w3, const Var& w5, const Var& w1, const Var& w_full) {
  constexpr int64_t kOpen = INT64_MAX;
  const auto every_second = [](int64_t offset) {
    return [offset](const Var& x) {
      return ops::slice(
          x, SliceAttrs{{0, 0, offset, offset}, {kOpen, kOpen, kOpen, kOpen}, {1, 1, 2, 2}});
    };
  };
  const auto depthwise = [](const Var& w, ConvAttrs a) {
    return [w, a](const Var& x) { return ops::conv2d(x, w, {}, a); };
  };
  // A concat of x after three channels of constants: its block lands at a channel offset.
  const auto concat_after = [](ConcatAttrs a) {
    return [a](const Var& x) {
      const Shape& s = x.shape();
      return ops::concat({Var(random({s[0], 3, s[2], s[3]}, 30)), x}, a);
    };
  };
  // The backward runs the readers last to first: the first ones add into the gradient.
  return {
      concat_after(ConcatAttrs{}),              // a search cell's output
      concat_after(ConcatAttrs{.relu = true}),  // with its preprocessing ReLU folded in
      [](const Var& x) {                        // any other steps
        return ops::slice(x, SliceAttrs{{0, 1, 1, 2}, {kOpen, 9, 7, kOpen}, {1, 2, 3, 3}});
      },
      depthwise(w3, {1, 1, 1, 16}),                       // loops, "same": the forward flipped
      depthwise(w3, {1, 0, 1, 16}),                       // loops, unpadded; w3 read twice
      depthwise(w5, {1, 2, 1, 16}),                       // loops, 5x5
      depthwise(w3, {1, 2, 2, 16}),                       // loops, dilated
      depthwise(w3, {2, 1, 1, 16}),                       // loops, stride 2
      [w1](const Var& x) { return ops::conv2d(x, w1); },  // 1x1: GEMM
      [w_full](const Var& x) {
        return ops::conv2d(x, w_full, {}, {1, 1, 1, 1});
      },
      [](const Var& x) {
        return ops::max_pool(x, {3, 1, 1});
      },
      [](const Var& x) {
        return ops::max_pool(x, {3, 2, 1});
      },
      [](const Var& x) {
        return ops::avg_pool(x, {3, 1, 1});
      },
      [](const Var& x) {
        return ops::avg_pool(x, {3, 2, 1});
      },
      [](const Var& x) {
        return ops::max_pool(x, {17, 1, 8});
      },                // int32 positions
      every_second(0),  // the factorized reduce's slices: rows of every second element
      every_second(1),
  };
}

struct Weights {
  Var w3{random({16, 1, 3, 3}, 11), true}, w5{random({16, 1, 5, 5}, 12), true};
  Var w1{random({8, 16, 1, 1}, 13), true}, w_full{random({4, 16, 3, 3}, 14), true};
  std::vector<Reader> all() const { return readers(w3, w5, w1, w_full); }
  std::vector<Var> vars() const { return {w3, w5, w1, w_full}; }
};

std::vector<double> to_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// The readers of one x of this shape, backpropagated together, against each alone.
void check_readers(const Shape& shape) {
  CAPTURE(shape.str());
  const Tensor x0 = random(shape, 1);
  // Each reader alone: its own x and weights (same values), its gradients summed here.
  std::vector<double> want_x(size_t(x0.numel()), 0.0);
  Weights alone;
  std::vector<std::vector<double>> want_w;
  for (const Var& w : alone.vars()) want_w.emplace_back(size_t(w.value().numel()), 0.0);
  std::vector<Tensor> grads;
  const std::vector<Reader> all = alone.all();
  for (size_t r = 0; r < all.size(); ++r) {
    Weights fresh;
    Var x(x0, true);
    Var y = fresh.all()[r](x);
    grads.push_back(random(y.shape(), 100 + r));
    y.backward(grads.back());
    const std::vector<double> gx = to_double(x.grad());
    for (size_t i = 0; i < gx.size(); ++i) want_x[i] += gx[i];
    for (size_t k = 0; k < want_w.size(); ++k) {
      if (!fresh.vars()[k].has_grad()) continue;
      const std::vector<double> gw = to_double(fresh.vars()[k].grad());
      for (size_t i = 0; i < gw.size(); ++i) want_w[k][i] += gw[i];
    }
  }

  // All readers in one backward: every one after the first adds into x's gradient in its
  // kernel, so no separate add runs.
  Weights shared;
  Var x(x0, true);
  std::vector<Var> ys;
  for (const Reader& read : shared.all()) ys.push_back(read(x));
  const bool split = kernel_split();
  set_kernel_split(true);
  reset_kernel_counts();
  backward(ys, grads);
  const int64_t separate_adds = kernel_counts().accumulate.calls;
  set_kernel_split(split);
  check_close("dx", x.grad().to_vector(), want_x, 1e-5);
  for (size_t k = 0; k < want_w.size(); ++k) {
    CAPTURE(k);
    check_close("dw", shared.vars()[k].grad().to_vector(), want_w[k], 1e-5);
  }
  CHECK(separate_adds == 0);
}
}  // namespace

// Rows of 32 take the depthwise row tiles where padded, planes of 8 x 8 the narrow tiles.
TEST_CASE("autodiff: a value's readers add their gradients into one, as each alone would") {
  check_readers(Shape{2, 16, 20, 32});
  check_readers(Shape{2, 16, 8, 8});
  check_readers(Shape{1, 16, 32, 32});  // the 1x1 data gradient in register tiles
}

// A weighted sum's coefficient matrix is read by every sum of a cell: each sum adds its
// rows' share into the matrix's gradient, leaving the other rows' as they were.
TEST_CASE("autodiff: weighted sums sharing coefficients and inputs add into their gradients") {
  const Tensor a0 = random({2, 12, 5, 5}, 1), b0 = random({2, 12, 5, 5}, 2);
  const Tensor c0 = random({3, 2}, 3);
  const Tensor g1 = random({2, 12, 5, 5}, 4), g2 = random({2, 12, 5, 5}, 5);
  const auto sums = [](const Var& a, const Var& b, const Var& c) {
    return std::vector<Var>{ops::weighted_sum({a, b}, c, 0, {0, 1}),
                            ops::weighted_sum({b, a}, c, 2, {0, 1})};
  };
  std::vector<double> want_a(size_t(a0.numel()), 0.0), want_b(size_t(b0.numel()), 0.0);
  std::vector<double> want_c(6, 0.0);
  for (int only = 0; only < 2; ++only) {
    Var a(a0, true), b(b0, true), c(c0, true);
    const std::vector<Var> y = sums(a, b, c);
    y[size_t(only)].backward(only == 0 ? g1 : g2);
    for (auto [got, want] : {std::pair{&a, &want_a}, {&b, &want_b}, {&c, &want_c}}) {
      const std::vector<double> g = to_double(got->grad());
      for (size_t i = 0; i < g.size(); ++i) (*want)[i] += g[i];
    }
  }
  Var a(a0, true), b(b0, true), c(c0, true);
  backward(sums(a, b, c), {g1, g2});
  check_close("da", a.grad().to_vector(), want_a, 1e-5);
  check_close("db", b.grad().to_vector(), want_b, 1e-5);
  check_close("dc", c.grad().to_vector(), want_c, 1e-5);
  // Row 1 is read by no sum.
  CHECK(c.grad().to_vector()[2] == 0.0f);
  CHECK(c.grad().to_vector()[3] == 0.0f);
}

// A weighted sum hands a candidate whose closing batch norm reads scaled gradients its
// coefficient instead of a written c_i * dy (engine/backends/kernel.h, scale_only); the
// batch norm applies it. The gradients must be those of the written copies, which the
// reference gets by reading each batch norm through a reshape to its own shape (an exact
// identity whose kernel takes no scaled gradients). Covered: training with and without
// affine parameters and eval mode; a batch norm read by two sums (the second's gradient
// lands on the first's scaled view and makes it a tensor of its own) and by a ReLU; one
// read twice by the same sum (not scaled: one slot for both); a leaf input (never scaled).
TEST_CASE("autodiff: batch norms read a weighted sum's gradient scaled, as from written copies") {
  const Shape shape{2, 4, 5, 5};
  const Tensor a0 = random(shape, 1), b0 = random(shape, 2), d0 = random(shape, 3);
  const Tensor x0 = random(shape, 4), c0 = random({2, 5}, 5);
  const Tensor g1 = random(shape, 6), g2 = random(shape, 7), g3 = random(shape, 8);
  using Grads = std::vector<std::vector<float>>;
  const auto run = [&](bool through_reshape) {
    Var a(a0, true), b(b0, true), d(d0, true), x(x0, true), c(c0, true);
    Var gamma(random({4}, 9), true), beta(random({4}, 10), true);
    const auto stats = [] {
      return std::pair{Var(Tensor::zeros({4}, Device::cpu)),
                       Var(Tensor::full({4}, 1.0f, Device::cpu))};
    };
    const auto [m1, v1] = stats();
    const auto [m2, v2] = stats();
    const auto [m3, v3] = stats();
    const auto view = [&](const Var& v) { return through_reshape ? ops::reshape(v, shape) : v; };
    const Var bn_plain = ops::batch_norm(a, {}, {}, m1, v1);
    const Var bn_affine = ops::batch_norm(b, gamma, beta, m2, v2);
    const Var bn_eval = ops::batch_norm(d, {}, {}, m3, v3, BatchNormAttrs{.training = false});
    const Var p = view(bn_plain), q = view(bn_affine), e = view(bn_eval);
    const Var y1 = ops::weighted_sum({p, q, e, x}, c, 0, {0, 1, 2, 3});
    const Var y2 = ops::weighted_sum({q, e, e}, c, 1, {4, 1, 2});
    const Var y3 = ops::relu(bn_plain);
    backward({y1, y2, y3}, {g1, g2, g3});
    Grads out;
    for (const Var& v : {a, b, d, x, c, gamma, beta}) out.push_back(v.grad().to_vector());
    return out;
  };
  const Grads want = run(true);
  const Grads got = run(false);
  const char* names[] = {"da", "db", "dd", "dx", "dc", "dgamma", "dbeta"};
  for (size_t k = 0; k < want.size(); ++k)
    check_close(names[k], got[k], std::vector<double>(want[k].begin(), want[k].end()), 1e-5);
}

// add and add_n hand their gradient to their inputs as a shared view instead of a copy each
// (engine/backends/kernel.h, passes_grad_through). The gradients must be those of copies,
// which the reference gets by reading every input of a sum through a multiplication by ones
// (exact, and mul's backward writes its own gradient). Covered, in the backward's order
// (the reverse of the calls below): views to a sum, a conv and a relu that further
// gradients then reach (the view becomes a tensor of its own), a batch norm holding a
// weighted sum's scaled view (the sum's copy is merged), one input read twice by the same
// sum (one slot for both: copies), the two outputs of a split (copies), leaf inputs (never
// views), and readers whose backward runs after the sums'.
TEST_CASE("autodiff: sums pass their gradient through to their inputs, as copies would") {
  const Shape shape{2, 4, 5, 5};
  const Tensor a0 = random(shape, 1), b0 = random(shape, 2), x0 = random(shape, 3);
  const Tensor z0 = random({2, 8, 5, 5}, 4), w0 = random({4, 4, 3, 3}, 5);
  const Tensor c0 = random({1, 2}, 6);
  const Tensor g1 = random(shape, 7), g2 = random(shape, 8), g3 = random(shape, 9);
  const Tensor g4 = random(shape, 10);
  using Grads = std::vector<std::vector<float>>;
  const auto run = [&](bool through_mul) {
    Var a(a0, true), b(b0, true), x(x0, true), z(z0, true), w(w0, true), c(c0, true);
    const Var ones(Tensor::full(shape, 1.0f, Device::cpu));
    const auto in = [&](const Var& v) { return through_mul ? ops::mul(v, ones) : v; };
    const Var p = ops::relu(a);
    const Var q = ops::batch_norm(b, {}, {}, Var(Tensor::zeros({4}, Device::cpu)),
                                  Var(Tensor::full({4}, 1.0f, Device::cpu)));
    const Var r = ops::conv2d(x, w, {}, ConvAttrs{.padding = 1});
    const std::vector<Var> halves = ops::split(z, {4, 4});
    const Var y2 = ops::relu(r);
    const Var y3 = ops::relu(q);
    const Var s2 = ops::add_n({in(p), in(p), in(x)});
    const Var s1 = ops::add_n({in(p), in(q), in(r)});
    const Var s3 = ops::add(in(s1), in(halves[0]));
    const Var s4 = ops::add_n({in(s3), in(halves[1]), in(r)});
    const Var y1 = ops::weighted_sum({s4, q}, c, 0, {0, 1});
    backward({y1, s2, y2, y3}, {g1, g2, g3, g4});
    Grads out;
    for (const Var& v : {a, b, x, z, w, c}) out.push_back(v.grad().to_vector());
    return out;
  };
  const Grads want = run(true);
  const Grads got = run(false);
  const char* names[] = {"da", "db", "dx", "dz", "dw", "dc"};
  for (size_t k = 0; k < want.size(); ++k)
    check_close(names[k], got[k], std::vector<double>(want[k].begin(), want[k].end()), 1e-6);
}
