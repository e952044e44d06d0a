// Ops that move or select data: concat/split on channels, strided slice, zero, reshape,
// and the full sum used for scalar losses.
#include <algorithm>

#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
std::vector<Shape> infer_concat(const Attrs&, const std::vector<Shape>& in) {
  if (in.empty()) throw error("concat: needs at least one input");
  Shape out = in[0];
  if (out.rank() < 2) throw error("concat: inputs must have a channel dimension, got ", out.str());
  for (size_t i = 1; i < in.size(); ++i) {
    Shape probe = in[i];
    if (probe.rank() != out.rank())
      throw error("concat: input ", i, " has shape ", probe.str(), ", expected rank ", out.rank());
    probe[1] = out[1];
    if (!(probe == out))
      throw error("concat: input ", i, " has shape ", in[i].str(),
                  "; all inputs must agree except in channels with ", in[0].str());
    out[1] += in[i][1];
  }
  return {out};
}

std::vector<Shape> infer_split(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<SplitAttrs>(attrs);
  if (in[0].rank() < 2) throw error("split: input must have a channel dimension");
  int64_t total = 0;
  std::vector<Shape> out;
  for (int64_t c : a.sizes) {
    if (c <= 0) throw error("split: piece sizes must be positive");
    Shape s = in[0];
    s[1] = c;
    out.push_back(s);
    total += c;
  }
  if (total != in[0][1])
    throw error("split: pieces sum to ", total, " channels but the input has ", in[0][1]);
  return out;
}

std::vector<Shape> infer_slice(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<SliceAttrs>(attrs);
  const Shape& x = in[0];
  if (x.rank() > 5) throw error("slice: supports ranks up to 5, got ", x.str());
  const auto r = static_cast<size_t>(x.rank());
  if (a.starts.size() != r || a.ends.size() != r || a.steps.size() != r)
    throw error("slice: needs a start, end and step for each of the ", r, " dimensions");
  Shape out = x;
  for (int d = 0; d < x.rank(); ++d) {
    const auto i = static_cast<size_t>(d);
    const int64_t end = std::min(a.ends[i], x[d]);
    if (a.steps[i] < 1 || a.starts[i] < 0 || a.starts[i] >= end)
      throw error("slice: dimension ", d, " selects nothing or has a bad step (start ", a.starts[i],
                  ", end ", a.ends[i], ", step ", a.steps[i], ", extent ", x[d], ")");
    out[d] = (end - a.starts[i] + a.steps[i] - 1) / a.steps[i];
  }
  return {out};
}

std::vector<Shape> infer_zero(const Attrs& attrs, const std::vector<Shape>& in) {
  const int stride = std::get<ZeroAttrs>(attrs).stride;
  if (stride < 1) throw error("zero: stride must be >= 1");
  Shape out = in[0];
  if (stride > 1) {
    require_rank("zero", "input", out, 4);
    out[2] = (out[2] + stride - 1) / stride;
    out[3] = (out[3] + stride - 1) / stride;
  }
  return {out};
}

std::vector<Shape> infer_reshape(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<ReshapeAttrs>(attrs);
  Shape to = a.shape;
  if (a.keep_batch) {
    if (to.rank() < 1 || in[0].rank() < 1)
      throw error("reshape: keep_batch needs a batch dimension in ", in[0].str(), " and ",
                  to.str());
    to[0] = in[0][0];
  }
  if (to.numel() != in[0].numel())
    throw error("reshape: cannot view ", in[0].str(), " as ", to.str());
  return {to};
}

std::vector<Shape> infer_sum(const Attrs&, const std::vector<Shape>&) { return {Shape{1}}; }

// A plain concat's backward hands each input its block of dy; a rectifying one masks that
// block by y > 0, as relu's backward does, so it keeps its output.
BackwardReads concat_backward_reads(const Attrs& attrs, const std::vector<bool>&,
                                    const std::vector<bool>&) {
  return {.outputs = std::get<ConcatAttrs>(attrs).relu};
}
}  // namespace

OpSchema schema_concat() {
  return {.name = "concat",
          .max_inputs = -1,
          .infer = infer_concat,
          .backward_reads = concat_backward_reads};
}
OpSchema schema_split() { return {.name = "split", .infer = infer_split}; }
OpSchema schema_slice() { return {.name = "slice", .infer = infer_slice}; }
// Its output does not depend on its input: no gradient, so nothing is recorded.
OpSchema schema_zero() { return {.name = "zero", .infer = infer_zero, .differentiable_inputs = 0}; }
OpSchema schema_reshape() { return {.name = "reshape", .infer = infer_reshape}; }
OpSchema schema_sum() { return {.name = "sum", .infer = infer_sum}; }

namespace ops {
Var concat(const std::vector<Var>& xs, ConcatAttrs attrs) {
  return apply(OpKind::concat, attrs, xs)[0];
}
std::vector<Var> split(const Var& x, const std::vector<int64_t>& sizes) {
  return apply(OpKind::split, SplitAttrs{sizes}, {x});
}
Var slice(const Var& x, SliceAttrs attrs) { return apply(OpKind::slice, std::move(attrs), {x})[0]; }
Var zero(const Var& x, int stride) { return apply(OpKind::zero, ZeroAttrs{stride}, {x})[0]; }
Var reshape(const Var& x, const Shape& shape) {
  return apply(OpKind::reshape, ReshapeAttrs{shape}, {x})[0];
}
Var sum(const Var& x) { return apply(OpKind::sum, NoAttrs{}, {x})[0]; }
}  // namespace ops

}  // namespace cellgraph
