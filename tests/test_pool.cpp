// max_pool, avg_pool (padding excluded) and global_avg_pool: the op cases
// (tests/support/op_harness.h: every backend against the CPU, the CPU's gradients against
// finite differences), and on the CPU forward and backward against naive loops, the
// corner average worked by hand, input validation.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "tests/support/bits.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::check_close;
using testing::random;
constexpr double kTolerance = 1e-5;  // check_close against the reference loops

// A shuffled ramp: every value distinct and 0.05 from its neighbours, so a finite-difference
// step of 1e-2 never changes which element of a window is the maximum.
Tensor separated(const Shape& shape, uint64_t seed) {
  std::vector<float> v(size_t(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.05f * float(i) - 0.025f * float(v.size());
  Rng rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
  return Tensor::from_vector(shape, v);
}

struct PoolReference {
  std::vector<double> y, dx;
};

// Windows clipped to the input; max takes the first largest value, average divides by the
// number of in-bounds elements.
PoolReference reference(bool is_max, const PoolAttrs& a, const Shape& s,
                        const std::vector<float>& x, const std::vector<float>& dy) {
  const int64_t planes = s[0] * s[1], h = s[2], w = s[3];
  const int64_t oh = (h + 2 * a.padding - a.kernel) / a.stride + 1;
  const int64_t ow = (w + 2 * a.padding - a.kernel) / a.stride + 1;
  PoolReference r;
  r.y.assign(size_t(planes * oh * ow), 0.0);
  r.dx.assign(x.size(), 0.0);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox) {
        const size_t yi = size_t((p * oh + oy) * ow + ox);
        double best = -std::numeric_limits<double>::infinity(), sum = 0;
        size_t best_at = 0;
        std::vector<size_t> window;
        for (int64_t ky = 0; ky < a.kernel; ++ky)
          for (int64_t kx = 0; kx < a.kernel; ++kx) {
            const int64_t iy = oy * a.stride - a.padding + ky;
            const int64_t ix = ox * a.stride - a.padding + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const size_t xi = size_t((p * h + iy) * w + ix);
            window.push_back(xi);
            sum += x[xi];
            if (x[xi] > best) {
              best = x[xi];
              best_at = xi;
            }
          }
        if (is_max) {
          r.y[yi] = best;
          r.dx[best_at] += dy[yi];
        } else {
          r.y[yi] = sum / double(window.size());
          for (size_t xi : window) r.dx[xi] += dy[yi] / double(window.size());
        }
      }
  return r;
}

void check_case(bool is_max, const PoolAttrs& a, const Shape& shape) {
  Var x(random(shape, 1), true);
  Var y = is_max ? ops::max_pool(x, a) : ops::avg_pool(x, a);
  const Tensor dy = random(y.shape(), 2);
  y.backward(dy);
  const PoolReference r = reference(is_max, a, shape, x.value().to_vector(), dy.to_vector());
  check_close("y", y.value().to_vector(), r.y, kTolerance);
  check_close("dx", x.grad().to_vector(), r.dx, kTolerance);
  // Nothing recorded: the inference primitive (no workspace) gives the same forward.
  Var y_infer = is_max ? ops::max_pool(x.detach(), a) : ops::avg_pool(x.detach(), a);
  check_close("y (inference)", y_infer.value().to_vector(), r.y, kTolerance);
}

// Pooling is piecewise linear (max) or linear (average) in x, so central differences are
// exact up to float rounding of the outputs (~1e-6 in L, ~1e-4 after dividing by 2 eps).
// atol 1e-3 / rtol 1e-2 is a 10x margin; a wrong argmax or divisor errs by >= 0.1.
testing::GradCheck pool_spec(OpKind kind, const PoolAttrs& a, const Tensor& x) {
  testing::GradCheck spec;
  spec.kind = kind;
  spec.attrs = a;
  if (kind == OpKind::global_avg_pool) spec.attrs = NoAttrs{};
  spec.inputs = {x};
  spec.eps = 1e-2f;
  spec.atol = 1e-3f;
  spec.rtol = 1e-2f;
  return spec;
}

std::vector<testing::OpCase> pool_cases() {
  return {
      // Well-separated inputs: no step changes which element of a window is the maximum.
      {"3x3 stride 1 pad 1", pool_spec(OpKind::max_pool, {3, 1, 1}, separated({1, 2, 5, 5}, 3))},
      {"3x3 stride 2 pad 1", pool_spec(OpKind::max_pool, {3, 2, 1}, separated({2, 2, 5, 5}, 4))},
      {"3x3 stride 1 pad 1", pool_spec(OpKind::avg_pool, {3, 1, 1}, random({1, 2, 5, 5}, 3))},
      {"3x3 stride 2 pad 1", pool_spec(OpKind::avg_pool, {3, 2, 1}, random({2, 2, 5, 5}, 4))},
      {"2 x 3 x 4 x 4", pool_spec(OpKind::global_avg_pool, {}, random({2, 3, 4, 4}, 5))},
  };
}

}  // namespace

CELLGRAPH_OP_CASES("pool", pool_cases)

TEST_CASE("max_pool: 3x3 stride 1 and 2, padding 1, matches the reference") {
  check_case(true, {3, 1, 1}, {2, 3, 6, 6});
  check_case(true, {3, 2, 1}, {2, 3, 6, 6});
  check_case(true, {3, 2, 1}, {2, 3, 7, 7});
  check_case(true, {2, 2, 0}, {1, 2, 6, 6});
  check_case(true, {5, 2, 2}, {1, 2, 11, 13});  // non-square, wide borders
  check_case(true, {3, 1, 1}, {1, 1, 1, 9});    // a single row: every window at the border
}

// The loops' paths (engine/backends/cpu/pool_loops.h): stride 1 and 2 (unrolled for 3x3),
// any other window, groups of planes with a partial last one, and for max pooling windows
// past a byte's positions (int32 positions).
TEST_CASE("max_pool and avg_pool: every path of the loops matches the reference") {
  for (bool is_max : {true, false}) {
    CAPTURE(is_max);
    check_case(is_max, {3, 1, 1}, {4, 16, 8, 8});   // many planes: every thread's scratch
    check_case(is_max, {3, 2, 1}, {3, 5, 16, 16});  // DARTS' reduction edge
    check_case(is_max, {5, 1, 2}, {1, 2, 9, 7});    // stride 1, another window
    check_case(is_max, {2, 1, 0}, {1, 2, 5, 6});    // stride 1, shrinking
    check_case(is_max, {4, 1, 2}, {1, 2, 5, 5});    // stride 1, growing
    check_case(is_max, {3, 3, 1}, {1, 2, 10, 11});  // stride 3
    check_case(is_max, {1, 1, 0}, {1, 3, 4, 4});    // a 1x1 window
  }
  check_case(true, {17, 1, 8}, {1, 2, 20, 18});  // 289 positions: int32
  check_case(false, {17, 1, 8}, {1, 2, 20, 18});
}

// Max pooling's backward at stride 1 with "same" padding on planes of whole 16-float
// vectors runs as a gather (engine/backends/cpu/max_pool_gather.h, on AVX-512): vectors of
// two rows, vectors that start mid-row, wider windows, the largest plane it takes. (The 3x3
// case bit for bit against the scatter's order is in the test of rows of 8, 16, 32 floats.)
TEST_CASE("max_pool: the backward's gather matches the reference") {
  check_case(true, {3, 1, 1}, {2, 3, 8, 8});
  check_case(true, {5, 1, 2}, {1, 2, 8, 8});
  check_case(true, {5, 1, 2}, {1, 2, 4, 12});
  check_case(true, {7, 1, 3}, {1, 2, 16, 16});
  check_case(true, {3, 1, 1}, {1, 2, 64, 64});
  // Many ties (x in {-2, ..., 2}) and integer gradients, so every sum is exact in any order:
  // each tie goes to the window's first maximum in row-major order, as in the reference.
  for (const auto& c : {std::pair<PoolAttrs, Shape>{{5, 1, 2}, {2, 3, 8, 8}},
                        {{5, 1, 2}, {1, 2, 4, 12}},
                        {{3, 1, 1}, {2, 2, 16, 16}}}) {
    const PoolAttrs& a = c.first;
    const Shape& shape = c.second;
    CAPTURE(a.kernel);
    std::vector<float> v = random(shape, 11).to_vector(), g = random(shape, 12).to_vector();
    for (float& e : v) e = std::round(2.0f * e);
    for (float& e : g) e = std::round(4.0f * e);
    Var x(Tensor::from_vector(shape, v), true);
    ops::max_pool(x, a).backward(Tensor::from_vector(shape, g));
    check_close("dx", x.grad().to_vector(), reference(true, a, shape, v, g).dx, 0.0);
  }
}

TEST_CASE("max_pool: ties go to the first element of the window, a NaN propagates") {
  // A constant plane: every window's maximum is its first in-bounds element.
  Var x(Tensor::full({1, 1, 4, 4}, 2.0f), true);
  Var y = ops::max_pool(x, {3, 1, 1});
  const Tensor dy = random(y.shape(), 2);
  y.backward(dy);
  const PoolReference r =
      reference(true, {3, 1, 1}, {1, 1, 4, 4}, x.value().to_vector(), dy.to_vector());
  check_close("dx", x.grad().to_vector(), r.dx, 0.0);
  // Input (0, 0) is the first element of the windows of outputs (0, 0), (0, 1), (1, 0)
  // and (1, 1); the reference agrees, and is not the sum over all nine.
  const std::vector<float> g = dy.to_vector();
  CHECK(x.grad().to_vector()[0] == doctest::Approx(g[0] + g[1] + g[4] + g[5]));

  std::vector<float> v(25);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  v[12] = std::numeric_limits<float>::quiet_NaN();  // the centre of a 5x5 plane
  // With and without autodiff: the forward tracks each window's position only when a
  // backward will read it.
  for (const bool grad : {true, false})
    for (const PoolAttrs& a :
         {PoolAttrs{3, 1, 1}, PoolAttrs{3, 2, 1}, PoolAttrs{5, 3, 2}, PoolAttrs{17, 1, 8}}) {
      CAPTURE(grad);
      const Tensor out = ops::max_pool(Var(Tensor::from_vector({1, 1, 5, 5}, v), grad), a).value();
      const int64_t oh = out.dim(2), ow = out.dim(3);
      const std::vector<float> yv = out.to_vector();
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t y0 = oy * a.stride - a.padding, x0 = ox * a.stride - a.padding;
          const bool covers = y0 <= 2 && 2 < y0 + a.kernel && x0 <= 2 && 2 < x0 + a.kernel;
          CAPTURE(oy);
          CAPTURE(ox);
          CHECK(std::isnan(yv[size_t(oy * ow + ox)]) == covers);
        }
    }
}

// Without autodiff the forward computes the maxima alone (no positions): the same values,
// bit for bit, on every path of the loops.
TEST_CASE("max_pool: the forward without a backward gives the same values") {
  const std::vector<std::pair<PoolAttrs, Shape>> cases = {{{3, 1, 1}, {4, 16, 8, 8}},
                                                          {{3, 2, 1}, {3, 5, 16, 16}},
                                                          {{5, 1, 2}, {1, 2, 9, 7}},
                                                          {{3, 3, 1}, {1, 2, 10, 11}},
                                                          {{17, 1, 8}, {1, 2, 20, 18}}};
  for (const std::pair<PoolAttrs, Shape>& c : cases) {
    const PoolAttrs& a = c.first;
    const Shape& shape = c.second;
    CAPTURE(shape.str());
    const Tensor x = random(shape, 9);
    const Tensor with = ops::max_pool(Var(x, true), a).value();
    const Tensor without = ops::max_pool(Var(x, false), a).value();
    CHECK(testing::same_bits(with.to_vector(), without.to_vector()));
  }
}

// DARTS' normal-cell pools (3x3, stride 1, padding 1) on planes 8, 16 and 32 wide run with
// each row in vector registers (engine/backends/cpu/pool_rows.h), whose shifts cross vector
// edges at 16 and 32. Their values must be those of the padded loops bit for bit: max
// with and without positions, with NaN, infinities, signed zeros and ties in the windows,
// its positions (through the backward) those the padded loops' passes pick; average against a loop
// adding in the padded loops' order (row pass from 0 over the padded row, then column pass from 0,
// then times 1 / count), so -0 inputs come out as those loops give them; its backward
// likewise (the window sum over dy / count).
TEST_CASE("max_pool and avg_pool: 3x3 same pooling on rows of 8, 16, 32 floats, bit for bit") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t w : {8, 16, 32})
    for (int64_t h : {2, 3, 7, 32}) {
      CAPTURE(w);
      CAPTURE(h);
      const Shape shape{2, 3, h, w};
      std::vector<float> v = random(shape, uint64_t(w * 100 + h)).to_vector();
      for (size_t i = 0; i < v.size(); ++i) {
        const size_t r = (i * 2654435761u) % 53;
        if (r == 0) v[i] = nan;
        if (r == 1) v[i] = inf;
        if (r == 2) v[i] = -inf;
        if (r == 3) v[i] = 0.0f;
        if (r == 4) v[i] = -0.0f;
        if (r >= 5 && r < 20) v[i] = std::round(v[i]);  // ties: -1, -0, 0, 1
      }
      for (int64_t y = 0; y < 3; ++y)  // a window of -0 only, and one of -inf only
        for (int64_t c = 3; c < 6; ++c) {
          v[size_t(y * w + c)] = -0.0f;
          v[size_t((h + y) * w + c)] = -inf;
        }
      const Tensor x = Tensor::from_vector(shape, v);
      const Tensor with = ops::max_pool(Var(x, true), {3, 1, 1}).value();
      const Tensor without = ops::max_pool(Var(x, false), {3, 1, 1}).value();
      CHECK(testing::same_bits(with.to_vector(), without.to_vector()));
      // The values, and the positions through the backward: the padded loops' row pass keeps
      // the first maximum of each row (a NaN replaces whatever came before), the column pass
      // the first row whose maximum is greater (or NaN); dy then goes to that element, added
      // in output order.
      const std::vector<float> g = random(shape, uint64_t(h + 7 * w)).to_vector();
      std::vector<float> expect_dx(v.size(), 0.0f), expect_y(v.size());
      const auto wins = [](float value, float best) { return value > best || value != value; };
      for (int64_t p = 0; p < 6; ++p)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t c = 0; c < w; ++c) {
            float best = -inf;  // a window of -inf only: position 0, its top left
            int64_t at_y = y - 1, at_x = c - 1;
            for (int64_t ky = -1; ky <= 1; ++ky) {
              float row_best = -inf;
              int64_t row_x = c - 1;
              for (int64_t kx = -1; kx <= 1; ++kx) {
                const int64_t yy = y + ky, xx = c + kx;
                const bool in = yy >= 0 && yy < h && xx >= 0 && xx < w;
                const float value = in ? v[size_t((p * h + yy) * w + xx)] : -inf;
                if (wins(value, row_best)) {
                  row_best = value;
                  row_x = xx;
                }
              }
              if (wins(row_best, best)) {
                best = row_best;
                at_y = y + ky;
                at_x = row_x;
              }
            }
            expect_y[size_t((p * h + y) * w + c)] = best;
            if (at_y >= 0 && at_y < h && at_x >= 0 && at_x < w)
              expect_dx[size_t((p * h + at_y) * w + at_x)] += g[size_t((p * h + y) * w + c)];
          }
      CHECK(testing::same_bits(with.to_vector(), expect_y));
      Var xg(x, true);
      ops::max_pool(xg, {3, 1, 1}).backward(Tensor::from_vector(shape, g));
      CHECK(testing::same_bits(xg.grad().to_vector(), expect_dx));
      // x read by a second op first: the pool's backward adds into the gradient there.
      Var xg2(x, true);
      const Tensor other = random(shape, 5);
      ops::add(ops::max_pool(xg2, {3, 1, 1}), ops::mul(xg2, Var(other)))
          .backward(Tensor::from_vector(shape, g));
      const std::vector<float> factor = other.to_vector();
      for (size_t i = 0; i < expect_dx.size(); ++i) expect_dx[i] = g[i] * factor[i] + expect_dx[i];
      CHECK(testing::same_bits(xg2.grad().to_vector(), expect_dx));

      // The padded loops' order of additions, in float: each row's 3-wide sums from 0 (the
      // padding's zeros added), then each column's 3-high sums of those from 0.
      const auto at = [&](const std::vector<float>& a, int64_t p, int64_t y, int64_t c) {
        return (y < 0 || y >= h || c < 0 || c >= w) ? 0.0f : a[size_t((p * h + y) * w + c)];
      };
      const auto window_sums = [&](const std::vector<float>& in) {
        std::vector<float> rows(in.size()), out(in.size());
        for (int pass = 0; pass < 2; ++pass)
          for (int64_t p = 0; p < 6; ++p)
            for (int64_t y = 0; y < h; ++y)
              for (int64_t c = 0; c < w; ++c) {
                float sum = 0.0f;
                for (int64_t k = -1; k <= 1; ++k)
                  sum += pass == 0 ? at(in, p, y, c + k) : at(rows, p, y + k, c);
                (pass == 0 ? rows : out)[size_t((p * h + y) * w + c)] = sum;
              }
        return out;
      };
      const auto inverse_count = [&](size_t i) {
        const auto inside = [](int64_t o, int64_t n) {
          return std::min(o + 2, n) - std::max(o - 1, int64_t{0});
        };
        const int64_t y = int64_t(i) / w % h, c = int64_t(i) % w;
        return 1.0f / float(inside(y, h) * inside(c, w));
      };
      std::vector<float> expect = window_sums(v);
      for (size_t i = 0; i < expect.size(); ++i) expect[i] = expect[i] * inverse_count(i);
      const Tensor avg = ops::avg_pool(Var(x, false), {3, 1, 1}).value();
      CHECK(testing::same_bits(avg.to_vector(), expect));

      // The backward: the same window sums over dy / count, in the same order; x read by two
      // pools, so the second backward adds into the first's gradient.
      const std::vector<float> dy = random(shape, uint64_t(w + h)).to_vector();
      std::vector<float> scaled(v.size());
      for (size_t i = 0; i < scaled.size(); ++i) scaled[i] = dy[i] * inverse_count(i);
      const std::vector<float> dx = window_sums(scaled);
      Var xv(x, true);
      ops::avg_pool(xv, {3, 1, 1}).backward(Tensor::from_vector(shape, dy));
      CHECK(testing::same_bits(xv.grad().to_vector(), dx));
      Var twice(x, true);
      ops::add(ops::avg_pool(twice, {3, 1, 1}), ops::avg_pool(twice, {3, 1, 1}))
          .backward(Tensor::from_vector(shape, dy));
      std::vector<float> doubled(dx.size());
      for (size_t i = 0; i < dx.size(); ++i) doubled[i] = dx[i] + dx[i];
      CHECK(testing::same_bits(twice.grad().to_vector(), doubled));
    }
}

TEST_CASE("avg_pool: 3x3 stride 1 and 2, padding 1, matches the reference") {
  check_case(false, {3, 1, 1}, {2, 3, 6, 6});
  check_case(false, {3, 2, 1}, {2, 3, 6, 6});
  check_case(false, {3, 2, 1}, {2, 3, 7, 7});
  check_case(false, {2, 2, 0}, {1, 2, 6, 6});  // the NATS-Bench residual shortcut
  check_case(false, {5, 2, 2}, {1, 2, 11, 13});
  check_case(false, {5, 3, 0}, {2, 3, 8, 8});  // DARTS' auxiliary head
  check_case(false, {3, 1, 1}, {1, 1, 1, 9});
}

// The stride-2 backward on planes 16 and 32 wide (engine/backends/cpu/avg_pool_s2_backward.h
// on AVX-512, pool_loops' passes elsewhere) in the passes' order of additions, in float:
// g = dy / count; input row 2m takes 0 + g[m], row 2m + 1 (0 + g[m + 1]) + g[m] (g[oh] = 0);
// then columns alike. Random values make another order of the four-term sums visible (an
// emulation summing columns first differs); some -0 and whole-number gradients go through
// the passes' added zeros.
TEST_CASE("avg_pool: 3x3 stride-2 backward on planes 16 and 32 wide, bit for bit") {
  for (const Shape& shape :
       {Shape{2, 3, 16, 16}, Shape{1, 2, 32, 32}, Shape{1, 2, 8, 32}, Shape{1, 1, 2, 16}}) {
    CAPTURE(shape.str());
    const int64_t planes = shape[0] * shape[1], h = shape[2], w = shape[3];
    const int64_t oh = h / 2, ow = w / 2;
    std::vector<float> dy = random({planes, 1, oh, ow}, uint64_t(h + w)).to_vector();
    for (size_t i = 0; i < dy.size(); i += 5) dy[i] = (i % 2 == 0) ? -0.0f : std::round(dy[i]);
    const auto inside = [](int64_t o, int64_t extent) {
      return std::min(2 * o + 2, extent) - std::max(2 * o - 1, int64_t{0});
    };
    const auto g = [&](int64_t p, int64_t m, int64_t k) {
      if (m >= oh || k >= ow) return 0.0f;
      return dy[size_t((p * oh + m) * ow + k)] * (1.0f / float(inside(m, h) * inside(k, w)));
    };
    std::vector<float> expect(size_t(planes * h * w));
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t iy = 0; iy < h; ++iy) {
        const int64_t m = iy / 2;
        const auto rows = [&](int64_t k) {
          return iy % 2 == 0 ? 0.0f + g(p, m, k) : (0.0f + g(p, m + 1, k)) + g(p, m, k);
        };
        for (int64_t ix = 0; ix < w; ++ix) {
          const int64_t k = ix / 2;
          const float next = k + 1 < ow ? rows(k + 1) : 0.0f;
          expect[size_t((p * h + iy) * w + ix)] =
              ix % 2 == 0 ? 0.0f + rows(k) : (0.0f + next) + rows(k);
        }
      }
    const Tensor x = random(shape, 3);
    const Tensor grad = Tensor::from_vector({shape[0], shape[1], oh, ow}, dy);
    Var xv(x, true);
    ops::avg_pool(xv, {3, 2, 1}).backward(grad);
    CHECK(testing::same_bits(xv.grad().to_vector(), expect));
    // Read by two pools: the second backward adds into the first's gradient.
    Var twice(x, true);
    ops::add(ops::avg_pool(twice, {3, 2, 1}), ops::avg_pool(twice, {3, 2, 1})).backward(grad);
    std::vector<float> doubled(expect.size());
    for (size_t i = 0; i < expect.size(); ++i) doubled[i] = expect[i] + expect[i];
    CHECK(testing::same_bits(twice.grad().to_vector(), doubled));
  }
}

TEST_CASE("avg_pool: padding is excluded from the average") {
  // x = 0..15 on a 4x4 plane; a 3x3 window with padding 1 at the top-left corner covers
  // 0, 1, 4, 5 (mean 2.5, not 10 / 9), at the top edge 0, 1, 2, 4, 5, 6 (mean 3).
  std::vector<float> v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  Var x(Tensor::from_vector({1, 1, 4, 4}, v), true);
  Var y = ops::avg_pool(x, {3, 1, 1});
  const std::vector<float> out = y.value().to_vector();
  CHECK(out[0] == doctest::Approx(2.5));
  CHECK(out[1] == doctest::Approx(3.0));
  CHECK(out[5] == doctest::Approx(5.0));    // interior: mean of 0..2, 4..6, 8..10
  CHECK(out[15] == doctest::Approx(12.5));  // bottom-right: 10, 11, 14, 15
  // Backward: the corner input 0 is in 4 windows, of 4, 6, 6 and 9 elements.
  y.backward(Tensor::full({1, 1, 4, 4}, 1.0f));
  CHECK(x.grad().to_vector()[0] == doctest::Approx(1.0 / 4 + 2.0 / 6 + 1.0 / 9));
  // Constant input stays constant, even at the corners.
  const Var ones(Tensor::full({1, 2, 5, 5}, 1.0f));
  for (float e : ops::avg_pool(ones, {3, 2, 1}).value().to_vector())
    CHECK(e == doctest::Approx(1.0));
}

TEST_CASE("global_avg_pool: forward and backward match the reference") {
  const Shape shape{2, 3, 4, 5};
  Var x(random(shape, 1), true);
  Var y = ops::global_avg_pool(x);
  CHECK(y.shape() == Shape{2, 3, 1, 1});
  const Tensor dy = random({2, 3, 1, 1}, 2);
  y.backward(dy);
  const std::vector<float> xv = x.value().to_vector(), g = dy.to_vector();
  std::vector<double> want_y(6, 0.0), want_dx(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    want_y[i / 20] += xv[i] / 20.0;
    want_dx[i] = g[i / 20] / 20.0;
  }
  check_close("y", y.value().to_vector(), want_y, kTolerance);
  check_close("dx", x.grad().to_vector(), want_dx, kTolerance);
}

TEST_CASE("pool: invalid calls throw cellgraph::Error") {
  const Var x3(random({2, 4, 4}, 1));
  CHECK_THROWS_AS(ops::max_pool(x3), Error);  // rank
  CHECK_THROWS_AS(ops::avg_pool(x3), Error);
  CHECK_THROWS_AS(ops::global_avg_pool(x3), Error);
  const Var x(random({1, 1, 4, 4}, 1));
  CHECK_THROWS_AS(ops::max_pool(x, {3, 1, 2}), Error);  // padding more than half the window
  CHECK_THROWS_AS(ops::avg_pool(x, {7, 1, 1}), Error);  // window larger than the input
}
