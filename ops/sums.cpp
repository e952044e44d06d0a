// Sums that join branches: add_n (a node summing its incoming edges) and weighted_sum (a
// mixed edge: candidates weighed by one row of an architecture coefficient matrix; or a
// search cell's node: its edges' candidates, each weighed at its edge's row).
#include <algorithm>

#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
std::vector<Shape> infer_add_n(const Attrs&, const std::vector<Shape>& in) {
  if (in.empty()) throw error("add_n: needs at least one input");
  for (size_t i = 1; i < in.size(); ++i) require_same("add_n", in[0], in[i]);
  return {in[0]};
}

std::vector<Shape> infer_weighted_sum(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<WeightedSumAttrs>(attrs);
  if (in.size() < 2) throw error("weighted_sum: needs at least one input and the coefficients");
  const size_t n = in.size() - 1;
  const Shape& coef = in.back();
  require_rank("weighted_sum", "coefficients", coef, 2);
  if (a.columns.size() != n)
    throw error("weighted_sum: ", n, " inputs but ", a.columns.size(), " coefficient columns");
  if (!a.rows.empty() && a.rows.size() != n)
    throw error("weighted_sum: ", n, " inputs but ", a.rows.size(), " coefficient rows");
  for (size_t i = 0; i < n; ++i) {
    require_same("weighted_sum", in[0], in[i]);
    if (a.row_of(i) < 0 || a.row_of(i) >= coef[0])
      throw error("weighted_sum: row ", a.row_of(i), " outside the coefficients ", coef.str());
    if (a.columns[i] < 0 || a.columns[i] >= coef[1])
      throw error("weighted_sum: column ", a.columns[i], " outside the coefficients ", coef.str());
  }
  return {in[0]};
}

std::vector<Shape> infer_flatten(const Attrs&, const std::vector<Shape>& in) {
  if (in[0].rank() < 2)
    throw error("flatten: input must have a batch dimension and more, got ", in[0].str());
  return {Shape{in[0][0], in[0].numel() / std::max<int64_t>(in[0][0], 1)}};
}

// dx_i = coef * dy needs the (small) coefficients; dcoef = <dy, x_i> needs every x_i, so the
// inputs are kept only when the coefficients want a gradient: not in a weight step, where
// the architecture is detached and the candidates' outputs are the largest thing a
// mixed edge would otherwise keep.
BackwardReads weighted_sum_backward_reads(const Attrs&, const std::vector<bool>&,
                                          const std::vector<bool>& wanted) {
  const size_t coefficients = wanted.size() - 1;
  return {.inputs = wanted[coefficients] ? ~0u : bit(int(coefficients))};
}
}  // namespace

// flatten lives here rather than with reshape because, like the sums, the IR needs it
// for batch-independent graphs.
OpSchema schema_flatten() { return {.name = "flatten", .infer = infer_flatten}; }

OpSchema schema_add_n() { return {.name = "add_n", .max_inputs = -1, .infer = infer_add_n}; }
OpSchema schema_weighted_sum() {
  return {.name = "weighted_sum",
          .min_inputs = 2,
          .max_inputs = -1,
          .infer = infer_weighted_sum,
          .backward_reads = weighted_sum_backward_reads};
}

namespace ops {
Var flatten(const Var& x) { return apply(OpKind::flatten, NoAttrs{}, {x})[0]; }
Var add_n(const std::vector<Var>& xs) { return apply(OpKind::add_n, NoAttrs{}, xs)[0]; }
Var weighted_sum(const std::vector<Var>& xs, const Var& coefficients, int32_t row,
                 std::vector<int32_t> columns) {
  std::vector<Var> inputs = xs;
  inputs.push_back(coefficients);
  return apply(OpKind::weighted_sum, WeightedSumAttrs{row, std::move(columns)}, inputs)[0];
}
Var weighted_sum(const std::vector<Var>& xs, const Var& coefficients, std::vector<int32_t> rows,
                 std::vector<int32_t> columns) {
  std::vector<Var> inputs = xs;
  inputs.push_back(coefficients);
  const int32_t row = rows.empty() ? 0 : rows[0];
  return apply(OpKind::weighted_sum, WeightedSumAttrs{row, std::move(columns), std::move(rows)},
               inputs)[0];
}
}  // namespace ops

}  // namespace cellgraph
