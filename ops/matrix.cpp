// Matrix ops: linear (x w^T + b), matmul, embedding lookup.
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
// x may have any rank >= 2: the leading dimensions are rows ([N, T, K] -> [N, T, M], a
// language model's decoder over every time step in one product).
std::vector<Shape> infer_linear(const Attrs&, const std::vector<Shape>& in) {
  if (in[0].rank() < 2)
    throw error("linear: input must have rank 2 or more, got shape ", in[0].str());
  require_rank("linear", "weight", in[1], 2);
  const int last = in[0].rank() - 1;
  if (in[0][last] != in[1][1])
    throw error("linear: input has ", in[0][last], " features but the weight ", in[1].str(),
                " expects ", in[1][1]);
  if (in.size() > 2 && in[2].rank() != 0 && !(in[2] == Shape{in[1][0]}))
    throw error("linear: bias must have shape [", in[1][0], "], got ", in[2].str());
  Shape out = in[0];
  out[last] = in[1][0];
  return {out};
}

std::vector<Shape> infer_matmul(const Attrs&, const std::vector<Shape>& in) {
  require_rank("matmul", "a", in[0], 2);
  require_rank("matmul", "b", in[1], 2);
  if (in[0][1] != in[1][0])
    throw error("matmul: inner extents differ: ", in[0].str(), " x ", in[1].str());
  return {Shape{in[0][0], in[1][1]}};
}

std::vector<Shape> infer_embedding(const Attrs&, const std::vector<Shape>& in) {
  require_rank("embedding", "weight", in[0], 2);
  // indices of any rank: [N] -> [N, D], [N, T] -> [N, T, D] (a batch of token sequences)
  if (in[1].rank() < 1 || in[1].rank() > 4)
    throw error("embedding: indices must have rank 1 to 4, got shape ", in[1].str());
  std::vector<int64_t> dims;
  dims.reserve(size_t(in[1].rank()) + 1);
  for (int d = 0; d < in[1].rank(); ++d) dims.push_back(in[1][d]);
  dims.push_back(in[0][1]);
  return {Shape(dims)};
}

// Each product's gradient with respect to one operand needs only the other operand, so an
// operand is kept only while the other one wants a gradient. linear's weight is a
// parameter and stays alive anyway.
BackwardReads linear_backward_reads(const Attrs&, const std::vector<bool>&,
                                    const std::vector<bool>& wanted) {
  return {.inputs = wanted[1] ? bit(0) | bit(1) : bit(1)};
}
BackwardReads matmul_backward_reads(const Attrs&, const std::vector<bool>&,
                                    const std::vector<bool>& wanted) {
  return {.inputs = (wanted[1] ? bit(0) : 0u) | (wanted[0] ? bit(1) : 0u)};
}
}  // namespace

OpSchema schema_linear() {
  return {.name = "linear",
          .min_inputs = 2,
          .max_inputs = 3,
          .infer = infer_linear,
          .backward_reads = linear_backward_reads};
}
OpSchema schema_matmul() {
  return {.name = "matmul",
          .min_inputs = 2,
          .max_inputs = 2,
          .infer = infer_matmul,
          .backward_reads = matmul_backward_reads};
}
OpSchema schema_embedding() {
  return {.name = "embedding",
          .min_inputs = 2,
          .max_inputs = 2,
          .infer = infer_embedding,
          .differentiable_inputs = bit(0),
          .backward_reads_inputs = bit(1)};
}

namespace ops {
Var linear(const Var& x, const Var& weight, const Var& bias) {
  return apply(OpKind::linear, NoAttrs{}, {x, weight, bias})[0];
}
Var matmul(const Var& a, const Var& b) { return apply(OpKind::matmul, NoAttrs{}, {a, b})[0]; }
Var embedding(const Var& weight, const Var& indices) {
  return apply(OpKind::embedding, NoAttrs{}, {weight, indices})[0];
}
}  // namespace ops

}  // namespace cellgraph
