// conv2d on oneDNN: forward, backward data and backward weights (+ bias), each primitive
// created once per shape and attribute set and cached. Our tensors stay plain (nchw, and
// weight [O, C/g, kh, kw], bit-identical to oihw / goihw [g, O/g, C/g, kh, kw]); a
// primitive that runs faster on blocked layouts gets its arguments reordered through
// scratch (conv_layout.h).
//
// Layout rule, per primitive kind (forward / backward data / backward weights), decided
// when the entry is created:
//   0. A depthwise conv runs our loops in all three passes (conv_loops.h):
//      oneDNN's jit_dw is fast only on blocked layouts, and in a DARTS step the reorders
//      into and out of them took as long as the depthwise convs themselves (1.9 s each
//      per step, ONEDNN_VERBOSE, 1 thread). Alone
//      (bench/conv_layout_probe --cpu, warm caches, ms fwd / bwd data / bwd weights) our
//      loops win at 3x3 (dw3x3_c16_s32 0.44 / 0.43 / 0.61 against 0.73 / 0.86 / 0.67 with
//      the reorders; dilated 0.41 / 0.41 / 0.66 against 0.70 / 0.60 / 0.60) and lose at 5x5
//      forward (dw5x5_c32_s16 0.63 / 0.63 / 0.96 against 0.41 / 0.55 / 0.97); inside a step,
//      where the reorders run on cold data, 5x5 on our loops measured no slower. A
//      first-order DARTS step, bench/profile_step at 1 thread, 3 rounds paired with the
//      rules below alone (load 1.0-1.5): 7.73 / 7.60 / 8.44 -> 7.51 / 7.61 / 7.69 s, its
//      convs 4.54 / 4.48 / 4.94 -> 4.25 / 4.38 / 4.42 s. Since then planes whose rows are
//      whole vectors (16 columns and more) run register row tiles (conv_loops.cpp has the
//      per-call figures): the 5x5 forward on 16x16 planes now takes 0.37 ms, ahead of the
//      0.41 above; 8-column planes run narrow tiles in the forward and data gradient.
//      Strided depthwise convs too (conv_strided.cpp): oneDNN's jit_dw forward and data
//      gradient with their reorders, and the clipped-row loops that served the passes jit_dw
//      lacks, against ours (ms a call, batch 64, 1 thread, forward / both gradients, best
//      of 12, two runs alternated with the old rule): 32 x 32 -> 16 x 16 at 32 channels
//      3x3 1.99-2.11 / 4.06-4.31 -> 0.95-1.36 / 2.19-2.83, 5x5 2.65-3.01 / 11.6-14.1 ->
//      1.33-1.68 / 3.58-4.43, dilated 5x5 2.12-2.22 / 19.0-19.2 -> 1.26-1.30 / 3.58-3.61;
//      16 x 16 -> 8 x 8 at 64 channels 3x3 1.22-1.41 / 2.46-2.49 -> 0.65-0.66 / 1.60-1.87,
//      5x5 1.27-1.60 / 5.4-7.6 -> 0.81-0.83 / 2.39-2.52. A first-order DARTS step
//      (bench/profile_step, 1 thread, three rounds paired with the rule before, the data
//      gradient then scattering dy where it now gathers): 8.05 / 7.07 / 6.95 -> 7.53 / 6.77
//      / 6.80 s, conv backward 3.07 / 2.71 / 2.67 -> 2.74 / 2.50 / 2.44 s.
//   1. Ask oneDNN with format_tag::any. If it picks a direct kernel (jit, jit_dw, brgconv,
//      ...) use it, reorders included: on plain layouts oneDNN only has im2col + GEMM, 2-4x
//      slower for a 3x3 conv and 5-20x for depthwise ones, reorders counted.
//   2. Except a 1x1, stride 1, unpadded, ungrouped conv: there plain GEMM needs no im2col
//      (one sgemm per image), and at our channel counts (<= 64) reordering src and dst
//      costs about what jit_1x1 saves (forward and data gradient: plain is faster). Its
//      weight gradient is 0.2 ms faster blocked on one idle core, but jit_1x1's spin
//      barriers lose whole scheduler ticks when a thread is preempted: 8-12 ms instead of
//      0.3-4.6 ms plain with two threads on a loaded machine, so plain there too. The
//      weight gradient runs our own loops on every plane (pointwise_weights.cpp has the
//      per-call figures): first 4 x 4 blocked dots on planes of 256 pixels and more (per
//      DARTS search step 0.038 s instead of oneDNN's 0.131 at 16 channels on 32x32, 0.060
//      instead of 0.073 at 32 on 16x16, while at 64 on 8x8 oneDNN's 0.050 beat their
//      0.118), now lanes along channels, which beat oneDNN on 8x8 and 4x4 planes too (ms a
//      call through the engine, batch 64, 1 thread, oneDNN -> ours: 64 -> 64 on 8x8 0.593
//      -> 0.497, 256 -> 64 1.850 -> 1.651, 128 -> 64 0.831 -> 0.733, 64 -> 64 on 4x4 0.181
//      -> 0.135; 2 threads, 64 -> 64 on 8x8 0.407-0.422 -> 0.296-0.306). On planes of 1024 pixels
//      and more the forward too runs our loops when more than one thread runs: with
//      OMP_WAIT_POLICY=passive (threads sleep between parallel regions, what a loaded machine
//      wants) oneDNN's GEMM forward took 3.1-4.1 ms a call instead of 0.3-0.5 with the default
//      policy; ours 0.45 (16 channels on 32x32, batch 64, 2 threads). A first-order DARTS step at 2
//      threads (bench/profile_step, two rounds of the four runs alternated, the rule then starting
//      at 256 pixels): passive 6.26 / 5.97 -> 5.16 / 4.82 s, its conv forwards 2.02 / 2.01
//      -> 1.11 / 1.07; default policy 3.91 / 4.09 -> 3.99 / 4.19 s (conv forwards 0.81 /
//      0.84 -> 0.90 / 0.89), the price of the rule. With one thread oneDNN's is the faster
//      (0.44-0.62 ms a call against 0.52-0.98), so it keeps that case. Ahead of both, on
//      those planes, the forward and data gradient whose outputs sum at most 32 terms
//      (16 -> 16 forward, 48 -> 16 data gradient, ...) run register tiles of 16 outputs x 16
//      pixels on AVX-512 at any thread count (pointwise_short_sums.cpp has the rule and the
//      per-call figures): in ISTA-NAS steps 16 -> 16 forward 0.67-0.69 -> 0.48-0.49 ms (1
//      thread), 0.54-0.55 -> 0.25-0.26 (2 threads, against the 4 x 32 tiles).
//   3. If oneDNN has only GEMM even with any, the conv runs GEMM plain (no depthwise conv
//      gets here: rule 0 takes every one).
// Measured with bench/conv_layout_probe.cpp; its header has the numbers.
#include <optional>
#include <string>

#include "engine/backends/cpu/conv_layout.h"
#include "engine/backends/cpu/conv_loops.h"
#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/grad_target.h"
#include "engine/backends/cpu/kernels.h"
#include "engine/backends/cpu/vector_loops.h"
#include "engine/threads.h"

namespace cellgraph::cpu {

namespace {
using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

struct ConvGeometry {
  memory::desc src, weights, bias, dst;  // bias is the zero desc when there is none
  memory::dims strides, dilates, padding_l, padding_r;
};

ConvGeometry geometry(const ConvAttrs& a, const Shape& x, const Shape& w, bool with_bias,
                      const Shape& y) {
  ConvGeometry g;
  g.src = plain_desc(x);
  g.dst = plain_desc(y);
  if (a.groups == 1) {
    g.weights = plain_desc(w);
  } else {
    g.weights = memory::desc({a.groups, w[0] / a.groups, w[1], w[2], w[3]}, memory::data_type::f32,
                             memory::format_tag::goihw);
  }
  if (with_bias) g.bias = plain_desc(Shape{w[0]});
  g.strides = {a.stride, a.stride};
  g.dilates = {a.dilation - 1, a.dilation - 1};  // oneDNN counts the gaps, not the step
  // Symmetric padding: oneDNN only requires (in + l + r - span) / stride + 1 == out with
  // integer division, which is the shape our schema inferred.
  g.padding_l = {a.padding, a.padding};
  g.padding_r = {a.padding, a.padding};
  return g;
}

// The same geometry with src, weights and dst left to oneDNN (the bias stays plain).
ConvGeometry any_layout(ConvGeometry g) {
  for (memory::desc* d : {&g.src, &g.weights, &g.dst})
    *d = memory::desc(d->dims(), memory::data_type::f32, memory::format_tag::any);
  return g;
}

// Rule 2 of the header.
bool im2col_free(const ConvAttrs& a, const Shape& w) {
  return w[2] == 1 && w[3] == 1 && a.stride == 1 && a.padding == 0 && a.groups == 1;
}

bool is_depthwise(const ConvAttrs& a, const Shape& x, const Shape& w) {
  return a.groups > 1 && a.groups == x[1] && w[0] == a.groups && w[1] == 1;
}

DepthwiseShape depthwise_shape(const ConvAttrs& a, const Shape& x, const Shape& w, const Shape& y) {
  return {x[0] * x[1], x[1], x[2], x[3], y[2], y[3], w[2], w[3], a.stride, a.padding, a.dilation};
}

std::string conv_key(const char* what, const ConvAttrs& a, const Shape& x, const Shape& w,
                     bool with_bias) {
  return cache_key(what, '|', x.str(), w.str(), "|s", a.stride, "p", a.padding, "d", a.dilation,
                   "g", a.groups, "b", with_bias);
}

dnnl::convolution_forward::primitive_desc forward_pd(prop_kind prop, const ConvGeometry& g) {
  const dnnl::convolution_forward::desc d(prop, algorithm::convolution_direct, g.src, g.weights,
                                          g.bias, g.dst, g.strides, g.dilates, g.padding_l,
                                          g.padding_r);
  return dnnl::convolution_forward::primitive_desc(d, dnnl_engine());
}

dnnl::convolution_backward_data::primitive_desc backward_data_pd(const ConvGeometry& g) {
  const dnnl::convolution_backward_data::desc d(algorithm::convolution_direct, g.src, g.weights,
                                                g.dst, g.strides, g.dilates, g.padding_l,
                                                g.padding_r);
  return dnnl::convolution_backward_data::primitive_desc(
      d, dnnl_engine(), forward_pd(prop_kind::forward_training, g));
}

dnnl::convolution_backward_weights::primitive_desc backward_weights_pd(const ConvGeometry& g) {
  const dnnl::convolution_backward_weights::desc d(algorithm::convolution_direct, g.src, g.weights,
                                                   g.bias, g.dst, g.strides, g.dilates, g.padding_l,
                                                   g.padding_r);
  return dnnl::convolution_backward_weights::primitive_desc(
      d, dnnl_engine(), forward_pd(prop_kind::forward_training, g));
}

// Which of our own loops replace the primitive (rules 0 and 2).
enum class Loops { none, depthwise, pointwise };
struct ForwardEntry {
  Loops loops = Loops::none;
  dnnl::convolution_forward primitive;
  LayoutArg src, weights, dst;
};
struct BackwardDataEntry {
  bool loops = false;  // depthwise loops instead of the primitive (rule 0)
  dnnl::convolution_backward_data primitive;
  LayoutArg diff_dst, weights, diff_src;
};
// Rule 2's forward with more than one thread: where oneDNN's GEMM forward was measured
// slow under passive waiting (32 x 32 planes). On 16 x 16 it was not (0.26 ms a call
// against our 0.28-0.32, 32 channels, 2 threads, passive), so those keep it.
constexpr int64_t kPointwiseForwardLoopsMinPlane = 1024;

struct BackwardWeightsEntry {
  Loops loops = Loops::none;
  dnnl::convolution_backward_weights primitive;
  LayoutArg src, diff_dst, diff_weights;
};

// Rule 0 of the header: a depthwise conv runs our loops in every pass.
bool depthwise_loops(const ConvAttrs& a, const Shape& x, const Shape& w, const Shape& y) {
  return is_depthwise(a, x, w) && depthwise_loops_fit(depthwise_shape(a, x, w, y));
}

ForwardEntry make_forward(prop_kind prop, const ConvAttrs& a, const Shape& x, const Shape& w,
                          const Shape& y, const ConvGeometry& g) {
  if (depthwise_loops(a, x, w, y)) return {Loops::depthwise, {}, {}, {}, {}};
  auto pd = forward_pd(prop, any_layout(g));
  if (is_generic_impl(pd) || im2col_free(a, w)) pd = forward_pd(prop, g);
  // Rule 2's forward: the primitive too, for one thread.
  const bool pointwise = im2col_free(a, w) && x[2] * x[3] >= kPointwiseForwardLoopsMinPlane;
  return {pointwise ? Loops::pointwise : Loops::none, dnnl::convolution_forward(pd),
          LayoutArg(g.src, pd.src_desc(), false), LayoutArg(g.weights, pd.weights_desc(), false),
          LayoutArg(g.dst, pd.dst_desc(), true)};
}

BackwardDataEntry make_backward_data(const ConvAttrs& a, const Shape& x, const Shape& w,
                                     const Shape& y, const ConvGeometry& g) {
  if (depthwise_loops(a, x, w, y)) return {true, {}, {}, {}, {}};
  auto pd = backward_data_pd(any_layout(g));
  if (is_generic_impl(pd) || im2col_free(a, w)) pd = backward_data_pd(g);
  return {false, dnnl::convolution_backward_data(pd), LayoutArg(g.dst, pd.diff_dst_desc(), false),
          LayoutArg(g.weights, pd.weights_desc(), false),
          LayoutArg(g.src, pd.diff_src_desc(), true)};
}

BackwardWeightsEntry make_backward_weights(const ConvAttrs& a, const Shape& x, const Shape& w,
                                           const Shape& y, const ConvGeometry& g) {
  if (depthwise_loops(a, x, w, y)) return {Loops::depthwise, {}, {}, {}, {}};
  if (im2col_free(a, w)) return {Loops::pointwise, {}, {}, {}, {}};
  auto pd = backward_weights_pd(any_layout(g));
  if (is_generic_impl(pd)) pd = backward_weights_pd(g);
  return {Loops::none, dnnl::convolution_backward_weights(pd),
          LayoutArg(g.src, pd.src_desc(), false), LayoutArg(g.dst, pd.diff_dst_desc(), false),
          LayoutArg(g.weights, pd.diff_weights_desc(), true)};
}

// A ReLU folded into the conv (ConvAttrs::relu_input): the depthwise loops apply it plane by
// plane where they can (depthwise_fold_fit: DARTS' stride-1 separable and dilated convs,
// the only ones spec/fold_conv_relu.h folds into); any other conv reads a rectified copy
// and masks its data gradient after, relu's values either way.
bool fold_in_loops(const ConvAttrs& a, bool depthwise, const Shape& x, const Shape& w,
                   const Shape& y) {
  return a.relu_input && depthwise && depthwise_fold_fit(depthwise_shape(a, x, w, y));
}

Tensor rectified(const Tensor& x) {
  Tensor r = Tensor::empty(x.shape(), x.device());
  rectify(x.data(), r.data(), x.numel());
  return r;
}

void conv2d_forward(const ForwardCall& call) {
  const auto& a = std::get<ConvAttrs>(call.attrs);
  Tensor x = call.inputs[0].contiguous();
  const Tensor w = call.inputs[1].contiguous();
  const bool with_bias = call.inputs.size() > 2 && call.inputs[2].defined();
  Tensor& y = call.outputs[0];
  // Inference primitives may pick a faster path; training ones must match the backward's.
  const prop_kind prop = call.saved ? prop_kind::forward_training : prop_kind::forward_inference;
  const ConvGeometry g = geometry(a, x.shape(), w.shape(), with_bias, y.shape());
  auto& entry = cached<ForwardEntry>(
      conv_key(call.saved ? "conv_fwd_train" : "conv_fwd_infer", a, x.shape(), w.shape(),
               with_bias),
      [&] { return CG_DNNL(make_forward(prop, a, x.shape(), w.shape(), y.shape(), g)); });
  const bool in_loops =
      fold_in_loops(a, entry.loops == Loops::depthwise, x.shape(), w.shape(), y.shape());
  if (a.relu_input && !in_loops) x = rectified(x);
  const Shape& xs = x.shape();
  const bool short_sums =
      im2col_free(a, w.shape()) && pointwise_short_sums_fit(xs[1], w.dim(0), xs[2] * xs[3]);
  if (entry.loops == Loops::depthwise || short_sums ||
      (entry.loops == Loops::pointwise && num_threads() > 1)) {
    CG_ASSERT(y.is_contiguous(), "conv2d: y must be contiguous");
    const Tensor b = with_bias ? call.inputs[2].contiguous() : Tensor();
    const float* bias = with_bias ? b.data() : nullptr;
    if (entry.loops == Loops::depthwise)
      depthwise_forward(depthwise_shape(a, xs, w.shape(), y.shape()), x.data(), w.data(), bias,
                        y.data(), false, DepthwiseFold{.rectify_input = in_loops});
    else if (short_sums)
      pointwise_short_forward(xs[0], xs[1], w.dim(0), xs[2] * xs[3], x.data(), w.data(), bias,
                              y.data());
    else
      pointwise_forward(xs[0], xs[1], w.dim(0), xs[2] * xs[3], x.data(), w.data(), bias, y.data());
    return;
  }

  Staging staging;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, staging.input(entry.src, x)},
                                       {DNNL_ARG_WEIGHTS, staging.input(entry.weights, w)},
                                       {DNNL_ARG_DST, staging.output(entry.dst, y)}};
  Tensor b;
  if (with_bias) {
    b = call.inputs[2].contiguous();
    args.emplace(DNNL_ARG_BIAS, wrap(b, g.bias));
  }
  CG_DNNL(entry.primitive.execute(dnnl_stream(), args));
  staging.finish();
  CG_DNNL(dnnl_stream().wait());
}

// db[o] = sum over n, h, w of dy[n, o, h, w]; used when db is wanted without a weights
// primitive (no dw, or the depthwise loops, which leave the bias out).
void bias_grad(const Tensor& dy, const Tensor& db) {
  const int64_t n = dy.dim(0), channels = dy.dim(1), plane = dy.dim(2) * dy.dim(3);
  const float* src = dy.data();
  float* dst = db.data();
#pragma omp parallel for
  for (int64_t c = 0; c < channels; ++c) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = src + (i * channels + c) * plane;
      for (int64_t k = 0; k < plane; ++k) acc += p[k];
    }
    dst[c] = float(acc);
  }
}

// Adds into a gradient that already holds another reader's (BackwardCall::accumulate): the
// depthwise loops' data gradient as it writes, every other pass through a GradTarget.
void conv2d_backward(const BackwardCall& call) {
  const auto& a = std::get<ConvAttrs>(call.attrs);
  const Shape& xs = call.input_shapes[0];
  const Shape& ws = call.input_shapes[1];
  const bool has_bias = call.input_shapes.size() > 2 && call.input_shapes[2].rank() != 0;
  const Tensor dy = call.grad_outputs[0].contiguous();
  const Tensor& dx = call.grad_inputs[0];
  const GradTarget dw(call, 1);
  std::optional<GradTarget> db_target;
  if (has_bias) db_target.emplace(call, 2);
  const Tensor db = db_target ? db_target->tensor() : Tensor();
  // One staging for both primitives: when both want dy in the same blocked layout, it is
  // reordered once.
  Staging staging;

  if (dx.defined()) {
    // The bias does not change the data gradient; leave it out of the key and the hint.
    const ConvGeometry g = geometry(a, xs, ws, false, dy.shape());
    auto& entry = cached<BackwardDataEntry>(conv_key("conv_bwd_data", a, xs, ws, false), [&] {
      return CG_DNNL(make_backward_data(a, xs, ws, dy.shape(), g));
    });
    const Tensor w = call.inputs[1].contiguous();
    const bool in_loops = fold_in_loops(a, entry.loops, xs, ws, dy.shape());
    // A folded ReLU's mask: the conv's input (x > 0 is relu(x) > 0).
    const Tensor mask = a.relu_input ? call.inputs[0].contiguous() : Tensor();
    if (!a.relu_input && im2col_free(a, ws) &&
        pointwise_short_sums_fit(ws[0], xs[1], xs[2] * xs[3])) {
      CG_ASSERT(dx.is_contiguous(), "conv2d: dx must be contiguous");
      pointwise_short_backward_data(xs[0], xs[1], ws[0], xs[2] * xs[3], dy.data(), w.data(),
                                    dx.data(), call.accumulates_into(0));
    } else if (entry.loops && (!a.relu_input || in_loops)) {
      CG_ASSERT(dx.is_contiguous(), "conv2d: dx must be contiguous");
      depthwise_backward_data(depthwise_shape(a, xs, ws, dy.shape()), dy.data(), w.data(),
                              dx.data(), call.accumulates_into(0),
                              in_loops ? mask.data() : nullptr);
    } else {
      const GradTarget target(call, 0);
      const Tensor& t = target.tensor();
      if (entry.loops) {
        CG_ASSERT(t.is_contiguous(), "conv2d: dx must be contiguous");
        depthwise_backward_data(depthwise_shape(a, xs, ws, dy.shape()), dy.data(), w.data(),
                                t.data());
      } else {
        CG_DNNL(entry.primitive.execute(dnnl_stream(),
                                        {{DNNL_ARG_DIFF_DST, staging.input(entry.diff_dst, dy)},
                                         {DNNL_ARG_WEIGHTS, staging.input(entry.weights, w)},
                                         {DNNL_ARG_DIFF_SRC, staging.output(entry.diff_src, t)}}));
        staging.finish();
        CG_DNNL(dnnl_stream().wait());
      }
      if (a.relu_input) mask_by(t.data(), mask.data(), t.data(), t.numel(), false);
      target.finish();
    }
  }

  bool db_done = false;
  if (dw.tensor().defined()) {
    const Tensor& dwt = dw.tensor();
    const bool with_db = db.defined();
    const ConvGeometry g = geometry(a, xs, ws, with_db, dy.shape());
    auto& entry = cached<BackwardWeightsEntry>(
        conv_key("conv_bwd_weights", a, xs, ws, with_db),
        [&] { return CG_DNNL(make_backward_weights(a, xs, ws, dy.shape(), g)); });
    const bool in_loops = fold_in_loops(a, entry.loops == Loops::depthwise, xs, ws, dy.shape());
    Tensor x = call.inputs[0].contiguous();
    if (a.relu_input && !in_loops) x = rectified(x);
    if (entry.loops != Loops::none) {
      CG_ASSERT(dwt.is_contiguous(), "conv2d: dw must be contiguous");
      if (entry.loops == Loops::depthwise)
        depthwise_backward_weights(depthwise_shape(a, xs, ws, dy.shape()), x.data(), dy.data(),
                                   dwt.data(), in_loops);
      else
        pointwise_backward_weights(xs[0], xs[1], ws[0], xs[2] * xs[3], x.data(), dy.data(),
                                   dwt.data());
    } else {
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, staging.input(entry.src, x)},
          {DNNL_ARG_DIFF_DST, staging.input(entry.diff_dst, dy)},
          {DNNL_ARG_DIFF_WEIGHTS, staging.output(entry.diff_weights, dwt)}};
      if (with_db) args.emplace(DNNL_ARG_DIFF_BIAS, wrap(db, g.bias));
      CG_DNNL(entry.primitive.execute(dnnl_stream(), args));
      staging.finish();
      db_done = with_db;
    }
  }
  if (db.defined() && !db_done) bias_grad(dy, db);
  CG_DNNL(dnnl_stream().wait());
  dw.finish();
  if (db_target) db_target->finish();
}
}  // namespace

void add_conv_kernels(KernelTable& table) {
  set(table, OpKind::conv2d, conv2d_forward, conv2d_backward, /*accumulates=*/true);
}

}  // namespace cellgraph::cpu
