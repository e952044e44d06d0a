// Our own conv2d loops on plain layouts: depthwise convs forward and backward at any stride
// (oneDNN serves them fast only on blocked layouts, the reorders around every call cost
// more than the conv, and several backward passes it has only as im2col + GEMM), and the
// weight gradient (pointwise_weights.cpp), the forward and data gradient where each output
// sums at most 32 terms (pointwise_short_sums.cpp) and, with more than one thread, the
// forward on planes of 1024 pixels and more of unpadded 1x1 stride-1 convs. conv.cpp decides per
// shape which passes run here; its header has the rule and the measurements.
#pragma once

#include <cstdint>

namespace cellgraph::cpu {

// A depthwise conv (groups == C == O) on plain layouts. One plane is one (image, channel)
// pair; planes are independent, so the loops run in parallel over the N x C planes.
struct DepthwiseShape {
  int64_t planes, channels, h, w, oh, ow, kh, kw, stride, pad, dilation;
};

// A ReLU folded into the conv (ConvAttrs::relu_input), for the passes that take one:
// `rectify_input` reads max(x, 0) for x; `output_mask` (a tensor of y's shape) keeps each
// output only where the mask is > 0, as relu's gradient does (the data gradient's mask is
// the conv's input x). Stride 1 with "same" padding only (depthwise_fold_fit); conv.cpp
// serves other convs from a rectified copy.
struct DepthwiseFold {
  bool rectify_input = false;
  const float* output_mask = nullptr;
};
bool depthwise_fold_fit(const DepthwiseShape& d);

// Any stride (depthwise_loops_fit): y from x, the weights [C, 1, kh, kw] and the bias [C]
// (null for none); overwrites y, or adds into it with `accumulate`.
bool depthwise_loops_fit(const DepthwiseShape& d);
void depthwise_forward(const DepthwiseShape& d, const float* x, const float* w, const float* bias,
                       float* y, bool accumulate = false, const DepthwiseFold& fold = {});

// dx from dy and the weights [C, 1, kh, kw]; overwrites dx, or adds into it with
// `accumulate` (a gradient that already holds another reader's). With `relu_mask` (the
// input x of a conv with a folded ReLU): zero where relu_mask <= 0.
void depthwise_backward_data(const DepthwiseShape& d, const float* dy, const float* w, float* dx,
                             bool accumulate = false, const float* relu_mask = nullptr);
// dw [C, 1, kh, kw] from x (max(x, 0) with `rectify_input`) and dy; overwrites dw (no bias
// gradient).
void depthwise_backward_weights(const DepthwiseShape& d, const float* x, const float* dy, float* dw,
                                bool rectify_input = false);

// Stride 2 and more (conv_strided.cpp), which the three above hand over to: the same
// forward and data gradient, and the weight gradient's per-plane sums, partial[p kh kw + t]
// for plane p and tap t.
bool depthwise_strided_fit(const DepthwiseShape& d);
void depthwise_strided_forward(const DepthwiseShape& d, const float* x, const float* w,
                               const float* bias, float* y, bool accumulate);
void depthwise_strided_backward_data(const DepthwiseShape& d, const float* dy, const float* w,
                                     float* dx, bool accumulate);
void depthwise_strided_weight_partials(const DepthwiseShape& d, const float* x, const float* dy,
                                       float* partial);

// y[n, o, p] = bias[o] + sum over c of w[o, c] * x[n, c, p] for `plane` pixels p: the forward
// of a 1x1, stride 1, unpadded, ungrouped conv (bias null for none); overwrites y. Tiles of
// 4 outputs x 32 pixels held in vector registers across the input channels; the tiles of
// all images run in one parallel loop.
void pointwise_forward(int64_t batch, int64_t in, int64_t out, int64_t plane, const float* x,
                       const float* w, const float* bias, float* y);

// The forward and data gradient of a 1x1, stride 1, unpadded, ungrouped conv whose outputs
// each sum at most 32 terms (pointwise_short_sums.cpp): `terms` input rows (the conv's in
// channels forward, its out channels for the data gradient), `outputs` a multiple of 16,
// planes of whole 16-pixel vectors, on a CPU with AVX-512.
bool pointwise_short_sums_fit(int64_t terms, int64_t outputs, int64_t plane);
// y [N, out, plane] = bias + w [out, in] x; overwrites y (bias null for none).
void pointwise_short_forward(int64_t batch, int64_t in, int64_t out, int64_t plane, const float* x,
                             const float* w, const float* bias, float* y);
// dx [N, in, plane] = w^T dy, added into dx where `accumulate`.
void pointwise_short_backward_data(int64_t batch, int64_t in, int64_t out, int64_t plane,
                                   const float* dy, const float* w, float* dx, bool accumulate);

// dw [O, C] of a 1x1, stride 1, unpadded conv: dw[o, c] = sum over n, p of dy[n, o, p] *
// x[n, c, p] for `plane` pixels p; overwrites dw (pointwise_weights.cpp). Each thread sums
// its images into its own copy, the operand with fewer channels transposed per image so
// that vector lanes run along its channels.
void pointwise_backward_weights(int64_t batch, int64_t in, int64_t out, int64_t plane,
                                const float* x, const float* dy, float* dw);

}  // namespace cellgraph::cpu
