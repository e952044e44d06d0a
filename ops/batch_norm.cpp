// batch_norm over the channels of x[N,C,H,W] (or x[N,C]): training mode normalises with the
// batch statistics (biased variance) and updates the running statistics in place with the
// unbiased variance, as PyTorch does; eval mode uses the running statistics.
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
std::vector<Shape> infer_batch_norm(const Attrs&, const std::vector<Shape>& in) {
  const Shape& x = in[0];
  if (x.rank() != 4 && x.rank() != 2)
    throw error("batch_norm: input must be [N,C,H,W] or [N,C], got ", x.str());
  const Shape c{x[1]};
  const char* names[] = {"x", "gamma", "beta", "running_mean", "running_var"};
  for (size_t i = 1; i < in.size(); ++i) {
    if (in[i].rank() == 0 && (i == 1 || i == 2)) continue;  // affine off
    if (!(in[i] == c))
      throw error("batch_norm: ", names[i], " must have shape ", c.str(), ", got ", in[i].str());
  }
  if ((in[1].rank() == 0) != (in[2].rank() == 0))
    throw error("batch_norm: gamma and beta must both be given or both be absent");
  return {x};
}

// Training without affine, y is x̂ = (x - mean) / sqrt(var + eps) itself, and the backward
// needs only x̂ and the saved statistics: the output is kept instead of the input. The
// output is what the next op reads (a ReLU, a weighted sum), which often keeps it anyway,
// while the input (a conv's output) would be kept by this node alone. With affine, x̂
// cannot be recovered from y where gamma is 0: the input is kept, with gamma.
BackwardReads batch_norm_backward_reads(const Attrs& attrs, const std::vector<bool>& given,
                                        const std::vector<bool>&) {
  if (std::get<BatchNormAttrs>(attrs).training && !given[1]) return {.outputs = true};
  return {.inputs = bit(0) | bit(1) | bit(2)};
}
}  // namespace

OpSchema schema_batch_norm() {
  return {.name = "batch_norm",
          .min_inputs = 5,
          .max_inputs = 5,
          .infer = infer_batch_norm,
          .differentiable_inputs = bit(0) | bit(1) | bit(2),
          .backward_reads = batch_norm_backward_reads};
}

namespace ops {
Var batch_norm(const Var& x, const Var& gamma, const Var& beta, const Var& running_mean,
               const Var& running_var, BatchNormAttrs attrs) {
  return apply(OpKind::batch_norm, attrs, {x, gamma, beta, running_mean, running_var})[0];
}
}  // namespace ops

}  // namespace cellgraph
