// conv2d: the op cases (tests/support/op_harness.h: every backend against the CPU, the CPU's
// gradients against finite differences), and on the CPU forward and all three gradients
// against a naive reference (double accumulation) for the shapes each kernel path of
// engine/backends/cpu/conv.cpp takes, and input validation.
#include <cmath>
#include <sstream>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "ops/ops.h"
#include "tests/support/op_harness.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::check_close;
using testing::random;
constexpr double kTolerance = 1e-4;  // check_close against the reference loops

struct ConvCase {
  Shape x, w;
  bool bias = false;
  ConvAttrs attrs;
};

struct ConvReference {
  std::vector<double> y, dx, dw, db;
};

int64_t out_extent(int64_t in, int64_t k, const ConvAttrs& a) {
  return (in + 2 * a.padding - a.dilation * (k - 1) - 1) / a.stride + 1;
}

// Direct loops over every (output, tap) pair; dy drives the three gradients.
ConvReference reference(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                        const std::vector<float>& b, const std::vector<float>& dy) {
  const ConvAttrs& a = c.attrs;
  const int64_t n = c.x[0], ch = c.x[1], h = c.x[2], wd = c.x[3];
  const int64_t o = c.w[0], cg = c.w[1], kh = c.w[2], kw = c.w[3];
  const int64_t oh = out_extent(h, kh, a), ow = out_extent(wd, kw, a);
  const int64_t og = o / a.groups;
  ConvReference r;
  r.y.assign(size_t(n * o * oh * ow), 0.0);
  r.dx.assign(x.size(), 0.0);
  r.dw.assign(w.size(), 0.0);
  r.db.assign(size_t(o), 0.0);
  for (int64_t in = 0; in < n; ++in)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t y0 = 0; y0 < oh; ++y0)
        for (int64_t x0 = 0; x0 < ow; ++x0) {
          const size_t yi = size_t(((in * o + oc) * oh + y0) * ow + x0);
          double acc = c.bias ? b[size_t(oc)] : 0.0;
          const double g = dy[yi];
          r.db[size_t(oc)] += g;
          for (int64_t ci = 0; ci < cg; ++ci) {
            const int64_t ic = (oc / og) * cg + ci;
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = y0 * a.stride - a.padding + ky * a.dilation;
                const int64_t ix = x0 * a.stride - a.padding + kx * a.dilation;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                const size_t xi = size_t(((in * ch + ic) * h + iy) * wd + ix);
                const size_t wi = size_t(((oc * cg + ci) * kh + ky) * kw + kx);
                acc += double(x[xi]) * double(w[wi]);
                r.dx[xi] += g * double(w[wi]);
                r.dw[wi] += g * double(x[xi]);
              }
          }
          r.y[yi] = acc;
        }
  return r;
}

// Forward, then backward with a random dy and every gradient wanted, against the reference.
void check_case(const ConvCase& c) {
  Var x(random(c.x, 1), true), w(random(c.w, 2), true);
  Var b = c.bias ? Var(random({c.w[0]}, 3), true) : Var();
  Var y = ops::conv2d(x, w, b, c.attrs);
  const Tensor dy = random(y.shape(), 4);
  y.backward(dy);
  const std::vector<float> bv = c.bias ? b.value().to_vector() : std::vector<float>{};
  const ConvReference r =
      reference(c, x.value().to_vector(), w.value().to_vector(), bv, dy.to_vector());
  CHECK(y.shape() == Shape{c.x[0], c.w[0], out_extent(c.x[2], c.w[2], c.attrs),
                           out_extent(c.x[3], c.w[3], c.attrs)});
  check_close("y", y.value().to_vector(), r.y, kTolerance);
  check_close("dx", x.grad().to_vector(), r.dx, kTolerance);
  check_close("dw", w.grad().to_vector(), r.dw, kTolerance);
  if (c.bias) check_close("db", b.grad().to_vector(), r.db, kTolerance);

  // The inference primitive (nothing recorded) gives the same forward.
  Var y_infer = ops::conv2d(x.detach(), w.detach(), c.bias ? b.detach() : Var(), c.attrs);
  check_close("y (inference)", y_infer.value().to_vector(), r.y, kTolerance);
}

// conv2d is bilinear, so central differences are exact up to float rounding of the
// outputs: with a few hundred outputs of magnitude ~2 that noise is ~1e-6 in L, ~1e-4 after
// dividing by 2 eps = 0.02. atol 2e-3 / rtol 1e-2 leaves a margin of 10x while still
// catching any indexing error (those are O(0.1) and up).
testing::OpCase op_case(const char* name, const ConvCase& c) {
  testing::GradCheck spec;
  spec.kind = OpKind::conv2d;
  spec.attrs = c.attrs;
  spec.inputs = {random(c.x, 11), random(c.w, 12), c.bias ? random({c.w[0]}, 13) : Tensor()};
  spec.eps = 1e-2f;
  spec.atol = 2e-3f;
  spec.rtol = 1e-2f;
  return {name, spec};
}

// x, w and b (when present) against finite differences.
std::vector<testing::OpCase> conv_cases() {
  return {
      op_case("3x3 pad 1, bias", {{1, 2, 5, 5}, {3, 2, 3, 3}, true, {1, 1, 1, 1}}),
      op_case("1x1 stride 2, bias", {{2, 2, 5, 5}, {2, 2, 1, 1}, true, {2, 0, 1, 1}}),
      op_case("depthwise 3x3, dilated and strided",
              {{1, 3, 6, 6}, {3, 1, 3, 3}, true, {2, 2, 2, 3}}),
      op_case("depthwise 3x3, dilated", {{1, 3, 7, 7}, {3, 1, 3, 3}, true, {1, 2, 2, 3}}),
      op_case("depthwise 5x5 pad 2", {{1, 2, 6, 6}, {2, 1, 5, 5}, false, {1, 2, 1, 2}}),
      op_case("grouped, 2 groups", {{1, 4, 4, 4}, {2, 2, 3, 3}, true, {1, 1, 1, 2}}),
  };
}

}  // namespace

CELLGRAPH_OP_CASES("conv", conv_cases)

TEST_CASE("conv2d: 3x3 padding 1, with and without bias, matches the reference") {
  check_case({{2, 3, 6, 6}, {4, 3, 3, 3}, true, {1, 1, 1, 1}});
  check_case({{2, 3, 6, 6}, {4, 3, 3, 3}, false, {1, 1, 1, 1}});
}

TEST_CASE("conv2d: stride 2 (3x3 and 1x1) matches the reference") {
  check_case({{2, 3, 7, 7}, {4, 3, 3, 3}, true, {2, 1, 1, 1}});
  check_case({{2, 4, 6, 6}, {3, 4, 1, 1}, false, {2, 0, 1, 1}});
  check_case({{2, 4, 7, 7}, {3, 4, 1, 1}, true, {2, 0, 1, 1}});  // odd extent: last column dropped
}

TEST_CASE("conv2d: 5x5 padding 2 matches the reference") {
  check_case({{2, 2, 7, 7}, {3, 2, 5, 5}, true, {1, 2, 1, 1}});
}

TEST_CASE("conv2d: dilation 2 (3x3 pad 2, 5x5 pad 4) matches the reference") {
  check_case({{2, 3, 8, 8}, {3, 3, 3, 3}, false, {1, 2, 2, 1}});
  check_case({{1, 2, 9, 9}, {2, 2, 5, 5}, true, {1, 4, 2, 1}});
  check_case({{2, 2, 8, 8}, {2, 2, 3, 3}, false, {2, 2, 2, 1}});  // dilated and strided
}

TEST_CASE("conv2d: depthwise (groups == C == O) matches the reference") {
  check_case({{2, 4, 6, 6}, {4, 1, 3, 3}, false, {1, 1, 1, 4}});
  check_case({{2, 4, 7, 7}, {4, 1, 3, 3}, false, {2, 1, 1, 4}});
  check_case({{2, 4, 7, 7}, {4, 1, 5, 5}, true, {1, 2, 1, 4}});
  check_case({{2, 4, 9, 9}, {4, 1, 5, 5}, false, {1, 4, 2, 4}});  // dil_conv_5x5's depthwise
}

// Depthwise convs with odd and non-square extents and a bias: the strided ones run the
// column-phase loops (engine/backends/cpu/conv_strided.cpp) in every pass, the stride-1
// ones the pitched weight-gradient loop.
TEST_CASE("conv2d: depthwise backward loops (dilated, strided, 5x5) match the reference") {
  check_case({{2, 4, 9, 9}, {4, 1, 3, 3}, false, {2, 2, 2, 4}});   // dilated and strided
  check_case({{2, 3, 11, 11}, {3, 1, 5, 5}, true, {2, 2, 1, 3}});  // 5x5 stride 2
  check_case({{2, 5, 9, 7}, {5, 1, 3, 3}, true, {1, 2, 2, 5}});    // dilated, non-square
  check_case({{1, 2, 6, 7}, {2, 1, 3, 5}, false, {1, 2, 1, 2}});   // non-square kernel
  check_case({{2, 3, 8, 8}, {3, 1, 5, 5}, false, {2, 4, 2, 3}});   // 5x5 dilated and strided
  // Rows of 7 taps take the per-tap loops instead of the 3- and 5-tap ones.
  check_case({{1, 2, 9, 9}, {2, 1, 7, 7}, false, {1, 3, 1, 2}});
  check_case({{1, 2, 13, 11}, {2, 1, 7, 7}, true, {1, 6, 2, 2}});
}

// Strided depthwise convs split each plane by column phase (conv_strided.cpp): stride 3
// (three phases), input rows and columns that no tap reads (unpadded, even extent: their
// gradient is zero), a non-square kernel, DARTS' reduction shapes (32 x 32 to 16 x 16 at 5x5,
// 16 x 16 to 8 x 8 dilated), one output column, and the rows of whole vectors that
// split_phases<2> shuffles.
TEST_CASE("conv2d: strided depthwise column-phase loops match the reference") {
  check_case({{1, 2, 10, 11}, {2, 1, 3, 3}, true, {3, 1, 1, 2}});   // stride 3
  check_case({{2, 3, 8, 8}, {3, 1, 3, 3}, false, {2, 0, 1, 3}});    // last row, column unread
  check_case({{1, 2, 9, 8}, {2, 1, 3, 5}, false, {2, 2, 1, 2}});    // non-square kernel
  check_case({{2, 4, 32, 32}, {4, 1, 5, 5}, false, {2, 2, 1, 4}});  // sep_conv_5x5's first
  check_case({{2, 4, 16, 16}, {4, 1, 3, 3}, true, {2, 2, 2, 4}});   // dil_conv_3x3's
  check_case({{1, 2, 3, 3}, {2, 1, 3, 3}, false, {2, 0, 1, 2}});    // one output pixel
  check_case({{2, 3, 17, 35}, {3, 1, 3, 3}, true, {2, 1, 1, 3}});   // odd pad: shuffles, tail
  // Stride 2 on rows of whole vectors splits each row into its phases 32 and 16 columns at
  // a time: odd and even pads (the even columns land in phase 1 or 0), rows of 32 (one
  // chunk), 16 (the half chunk) and 48 (both).
  check_case({{2, 3, 32, 32}, {3, 1, 3, 3}, false, {2, 1, 1, 3}});  // sep_conv_3x3's first
  check_case({{2, 3, 16, 16}, {3, 1, 3, 3}, true, {2, 1, 1, 3}});   // the same at 16 x 16
  check_case({{1, 2, 9, 48}, {2, 1, 5, 5}, false, {2, 4, 2, 2}});   // dil_conv_5x5's, 32 + 16
}

// Stride-1 depthwise convs run our pitched-plane loops in every pass (conv.cpp rule 0);
// 3x3 here (9 taps in one pass), 5x5 and other sizes in the depthwise tests above: padded
// and unpadded, dilated, non-square planes, a bias, DARTS' channel counts.
TEST_CASE("conv2d: stride-1 depthwise loops (forward and both gradients) match the reference") {
  check_case({{2, 3, 5, 7}, {3, 1, 3, 3}, true, {1, 1, 1, 3}});     // non-square, bias
  check_case({{1, 2, 6, 6}, {2, 1, 3, 3}, false, {1, 0, 1, 2}});    // unpadded
  check_case({{2, 16, 8, 8}, {16, 1, 3, 3}, true, {1, 2, 2, 16}});  // dil_conv_3x3's
  check_case({{1, 17, 9, 5}, {17, 1, 3, 3}, false, {1, 1, 1, 17}});
  check_case({{2, 32, 8, 8}, {32, 1, 5, 5}, true, {1, 4, 2, 32}});  // dil_conv_5x5's
}

// Output rows of whole 16-column vectors take the row tiles (conv_loops.cpp): bands of 4
// rows at the dilation's spacing and the rows left over, 3x3 and 5x5, dilations 1 and 2,
// padded and unpadded, one, two and three vectors a row, a bias. The backward's data
// gradient is the same loops on the flipped kernel. On a CPU with AVX-512 the 'same' 3x3
// cases take the aligned rows (a vector's neighbours: the zero gaps, one gap and a row
// vector, two row vectors); emulated CPUs (scripts/isa-check) the unaligned tiles.
TEST_CASE("conv2d: stride-1 depthwise row tiles (rows of 16 and 32) match the reference") {
  check_case({{2, 3, 13, 16}, {3, 1, 3, 3}, true, {1, 1, 1, 3}});   // 3 bands and a row
  check_case({{1, 2, 19, 32}, {2, 1, 5, 5}, false, {1, 4, 2, 2}});  // dilated 5x5: 2 bands, 3 rows
  check_case({{2, 4, 16, 16}, {4, 1, 5, 5}, true, {1, 2, 1, 4}});   // sep_conv_5x5's
  check_case({{1, 3, 10, 16}, {3, 1, 3, 3}, false, {1, 2, 2, 3}});  // dilated 3x3: a band, 2 rows
  check_case({{1, 2, 18, 18}, {2, 1, 3, 3}, false, {1, 0, 1, 2}});  // unpadded: 16 x 16 out
  check_case({{2, 16, 32, 32}, {16, 1, 3, 3}, false, {1, 1, 1, 16}});  // sep_conv_3x3's
  check_case({{1, 2, 11, 48}, {2, 1, 3, 3}, true, {1, 2, 2, 2}});      // dilated, 3 vectors a row
  check_case({{1, 2, 5, 48}, {2, 1, 3, 3}, false, {1, 1, 1, 2}});      // a band and a row
}

// Planes narrower than a vector whose rows tile it ("same" padding) take the narrow tiles:
// 8 x 8 at dilation 1 and 2 (2 and 1 units a vector) with a band of 4 vectors and a tail,
// 4-column planes (the general step), a bias. The data gradient runs them too.
TEST_CASE("conv2d: stride-1 depthwise narrow tiles (rows of 8 and 4) match the reference") {
  check_case({{2, 3, 8, 8}, {3, 1, 3, 3}, true, {1, 1, 1, 3}});      // one band
  check_case({{1, 2, 10, 8}, {2, 1, 5, 5}, false, {1, 2, 1, 2}});    // a band and a vector
  check_case({{1, 2, 24, 8}, {2, 1, 5, 5}, true, {1, 4, 2, 2}});     // dilated 5x5: 3 bands
  check_case({{2, 2, 4, 4}, {2, 1, 3, 3}, false, {1, 1, 1, 2}});     // 4 columns, one vector
  check_case({{1, 2, 16, 4}, {2, 1, 3, 3}, false, {1, 1, 1, 2}});    // 4 columns, a band
  check_case({{1, 2, 20, 4}, {2, 1, 3, 3}, true, {1, 2, 2, 2}});     // dilated: a band, a vector
  check_case({{2, 64, 8, 8}, {64, 1, 3, 3}, false, {1, 1, 1, 64}});  // sep_conv_3x3's at C = 64
}

// The narrow tiles read a row's neighbour where the true window has padding, and clear
// those lanes: an inf at the end of row 3 must reach only the outputs whose window holds
// it (rows 2-4, columns 6-7 for a 3x3), not the start of row 4 (NaN if weighted by zero).
TEST_CASE("conv2d: an inf beside a narrow plane's edge stays inside its windows") {
  std::vector<float> x(2 * 64, 0.0f);  // two channels (a depthwise conv), the inf in the first
  x[3 * 8 + 7] = INFINITY;
  const Var y = ops::conv2d(Var(Tensor::from_vector({1, 2, 8, 8}, x)),
                            Var(Tensor::full({2, 1, 3, 3}, 1.0f)), {}, {1, 1, 1, 2});
  const std::vector<float> out = y.value().to_vector();
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 8; ++c) {
      CAPTURE(r);
      CAPTURE(c);
      const bool inside = r >= 2 && r <= 4 && c >= 6;
      CHECK(out[size_t(r * 8 + c)] == (inside ? INFINITY : 0.0f));
      CHECK(out[size_t(64 + r * 8 + c)] == 0.0f);
    }
}

// Channel counts of 16 and more pick oneDNN's blocked kernels (jit, jit_dw, jit_1x1) with
// reorders; 17 pads the channel blocks. A 1x1 stride 1 conv stays on plain GEMM.
TEST_CASE("conv2d: blocked-layout and plain 1x1 paths match the reference") {
  check_case({{2, 16, 8, 8}, {16, 16, 3, 3}, true, {1, 1, 1, 1}});
  check_case({{2, 17, 7, 7}, {17, 1, 3, 3}, true, {1, 1, 1, 17}});
  check_case({{2, 16, 9, 9}, {16, 1, 3, 3}, false, {1, 2, 2, 16}});
  check_case({{2, 16, 5, 5}, {32, 16, 1, 1}, false, {1, 0, 1, 1}});
  check_case({{2, 4, 5, 5}, {3, 4, 1, 1}, true, {1, 0, 1, 1}});
  // The weight gradient runs our loops (pointwise_weights.cpp) on every plane, and from 1024
  // pixels so does the forward with more than one thread (oneDNN's GEMM with one): here with
  // whole blocks, channel remainders on both sides, a bias, and planes of several
  // 256-pixel tasks ending in a partial 32-pixel tile. The weight gradient transposes x when
  // it has no more channels than dy, else dy; its register blocks are 8 rows by one or two
  // 16-lane vectors, so the cases take both, partial 16 x 16 tiles on both axes, padded lanes
  // and single leftover rows. Batch 70 on 4 x 4 planes passes the point where the float sums
  // are flushed into double ones (1024 pixels: 64 images).
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    set_num_threads(threads);
    check_case({{2, 40, 9, 9}, {36, 40, 1, 1}, false, {1, 0, 1, 1}});
    check_case({{2, 33, 6, 6}, {48, 33, 1, 1}, true, {1, 0, 1, 1}});
    check_case({{70, 3, 4, 4}, {5, 3, 1, 1}, false, {1, 0, 1, 1}});
    check_case({{3, 8, 16, 16}, {16, 8, 1, 1}, false, {1, 0, 1, 1}});
    check_case({{2, 6, 17, 16}, {5, 6, 1, 1}, true, {1, 0, 1, 1}});
    check_case({{2, 20, 23, 24}, {7, 20, 1, 1}, true, {1, 0, 1, 1}});
    check_case({{2, 6, 33, 32}, {5, 6, 1, 1}, true, {1, 0, 1, 1}});
    check_case({{1, 20, 32, 32}, {16, 20, 1, 1}, false, {1, 0, 1, 1}});
  }
  set_num_threads(0);
}

// 1x1 convs whose outputs each sum at most 32 terms run register tiles of 16 outputs x 16
// pixels on AVX-512 (pointwise_short_sums.cpp) on planes of 1024 pixels and more: the
// forward where in <= 32 and out is a multiple of 16, the data gradient where out <= 32 and
// in is a multiple of 16. Each case says which passes take them; the others stay on
// oneDNN's GEMM or (forward, 2 threads) the 4 x 32 tiles, and every pass does on a CPU
// without AVX-512 (scripts/isa-check).
TEST_CASE("conv2d: 1x1 register tiles for short sums match the reference") {
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    set_num_threads(threads);
    check_case({{2, 16, 32, 32}, {16, 16, 1, 1}, true, {1, 0, 1, 1}});   // both, a bias
    check_case({{1, 32, 16, 64}, {16, 32, 1, 1}, false, {1, 0, 1, 1}});  // both, 32 terms
    check_case({{1, 8, 32, 48}, {48, 8, 1, 1}, true, {1, 0, 1, 1}});     // forward: 3 blocks
    check_case({{1, 48, 32, 32}, {32, 48, 1, 1}, false, {1, 0, 1, 1}});  // data gradient
    check_case({{2, 16, 16, 16}, {16, 16, 1, 1}, false, {1, 0, 1, 1}});  // neither: 256 pixels
    check_case({{1, 16, 31, 48}, {16, 16, 1, 1}, false, {1, 0, 1, 1}});  // neither: 1488 % 16
  }
  set_num_threads(0);
}

TEST_CASE("conv2d: grouped (groups = 2, 3) matches the reference") {
  check_case({{2, 4, 6, 6}, {6, 2, 3, 3}, true, {1, 1, 1, 2}});
  check_case({{1, 6, 5, 5}, {3, 2, 3, 3}, false, {2, 1, 1, 3}});
}

TEST_CASE("conv2d: only the wanted gradients are produced") {
  const ConvCase c{{2, 3, 5, 5}, {4, 3, 3, 3}, true, {1, 1, 1, 1}};
  const Tensor xt = random(c.x, 1), wt = random(c.w, 2), bt = random({4}, 3);
  const Tensor dy = random({2, 4, 5, 5}, 4);
  const ConvReference r =
      reference(c, xt.to_vector(), wt.to_vector(), bt.to_vector(), dy.to_vector());

  SUBCASE("dx only") {
    Var x(xt, true), w(wt, false), b(bt, false);
    ops::conv2d(x, w, b, c.attrs).backward(dy);
    check_close("dx", x.grad().to_vector(), r.dx, kTolerance);
    CHECK_FALSE(w.has_grad());
    CHECK_FALSE(b.has_grad());
  }
  SUBCASE("dw only") {
    Var x(xt, false), w(wt, true), b(bt, false);
    ops::conv2d(x, w, b, c.attrs).backward(dy);
    check_close("dw", w.grad().to_vector(), r.dw, kTolerance);
    CHECK_FALSE(x.has_grad());
  }
  SUBCASE("db only (no weight-gradient primitive)") {
    Var x(xt, false), w(wt, false), b(bt, true);
    ops::conv2d(x, w, b, c.attrs).backward(dy);
    check_close("db", b.grad().to_vector(), r.db, kTolerance);
  }
}

TEST_CASE("conv2d: invalid calls throw cellgraph::Error") {
  const Var x(random({1, 3, 5, 5}, 1));
  // Channel mismatch: 2 * groups 1 != 3.
  CHECK_THROWS_AS(ops::conv2d(x, Var(random({4, 2, 3, 3}, 2))), Error);
  // Bias of the wrong length.
  CHECK_THROWS_AS(ops::conv2d(x, Var(random({4, 3, 3, 3}, 2)), Var(random({3}, 3))), Error);
  // Groups that do not divide the input channels.
  CHECK_THROWS_AS(ops::conv2d(x, Var(random({4, 1, 3, 3}, 2)), {}, {1, 1, 1, 2}), Error);
  // A window larger than the input.
  CHECK_THROWS_AS(ops::conv2d(x, Var(random({4, 3, 7, 7}, 2))), Error);
  // Rank 3 input.
  CHECK_THROWS_AS(ops::conv2d(Var(random({3, 5, 5}, 1)), Var(random({4, 3, 3, 3}, 2))), Error);
}
