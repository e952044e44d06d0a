// conv2d: x[N,C,H,W] * w[O,C/groups,kh,kw] (+ b[O]) with stride, padding, dilation, groups.
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
std::vector<Shape> infer_conv2d(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<ConvAttrs>(attrs);
  const Shape& x = in[0];
  const Shape& w = in[1];
  require_rank("conv2d", "input", x, 4);
  require_rank("conv2d", "weight", w, 4);
  if (a.groups < 1 || x[1] % a.groups != 0 || w[0] % a.groups != 0)
    throw error("conv2d: groups ", a.groups, " must divide input channels ", x[1],
                " and output channels ", w[0]);
  if (w[1] * a.groups != x[1])
    throw error("conv2d: input has ", x[1], " channels but the weight ", w.str(), " with groups ",
                a.groups, " expects ", w[1] * a.groups);
  if (in.size() > 2 && in[2].rank() != 0 && !(in[2] == Shape{w[0]}))
    throw error("conv2d: bias must have shape [", w[0], "], got ", in[2].str());
  const int64_t h = window_out("conv2d", x[2], int(w[2]), a.stride, a.padding, a.dilation);
  const int64_t wd = window_out("conv2d", x[3], int(w[3]), a.stride, a.padding, a.dilation);
  return {Shape{x[0], w[0], h, wd}};
}

// dx needs the weight, dw needs x: with the weight frozen (every architecture step) the
// input is not kept, unless a folded ReLU's mask (x > 0) shapes dx. The weight is a
// parameter, alive anyway.
BackwardReads conv2d_backward_reads(const Attrs& attrs, const std::vector<bool>&,
                                    const std::vector<bool>& wanted) {
  const bool mask = std::get<ConvAttrs>(attrs).relu_input && wanted[0];
  return {.inputs = wanted[1] || mask ? bit(0) | bit(1) : bit(1)};
}

// A grouped conv (depthwise in DARTS' separable and dilated convs) costs k*k*C/groups
// multiply-adds per output: at Recompute::convolutions its output, which the next
// (pointwise) conv's weight gradient reads, is recomputed in that backward rather than kept.
Recompute conv2d_cheap_to_recompute(const Attrs& attrs) {
  return std::get<ConvAttrs>(attrs).groups > 1 ? Recompute::convolutions : Recompute::none;
}
}  // namespace

OpSchema schema_conv2d() {
  return {.name = "conv2d",
          .min_inputs = 2,
          .max_inputs = 3,
          .infer = infer_conv2d,
          .backward_reads = conv2d_backward_reads,
          .cheap_to_recompute = conv2d_cheap_to_recompute};
}

namespace ops {
Var conv2d(const Var& x, const Var& weight, const Var& bias, ConvAttrs attrs) {
  return apply(OpKind::conv2d, attrs, {x, weight, bias})[0];
}
}  // namespace ops

}  // namespace cellgraph
