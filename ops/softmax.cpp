// Softmax family over the class dimension of [N,C], and the mean cross-entropy loss
// (log-softmax + negative log-likelihood, optional label smoothing) in one op.
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
template <const char* Name>
std::vector<Shape> infer_rows(const Attrs&, const std::vector<Shape>& in) {
  require_rank(Name, "input", in[0], 2);
  return {in[0]};
}
constexpr char kSoftmax[] = "softmax";
constexpr char kLogSoftmax[] = "log_softmax";

std::vector<Shape> infer_cross_entropy(const Attrs& attrs, const std::vector<Shape>& in) {
  require_rank("cross_entropy", "logits", in[0], 2);
  require_rank("cross_entropy", "labels", in[1], 1);
  if (in[1][0] != in[0][0])
    throw error("cross_entropy: ", in[0][0], " rows of logits but ", in[1][0], " labels");
  const float eps = std::get<CrossEntropyAttrs>(attrs).label_smoothing;
  if (!(eps >= 0.0f && eps < 1.0f))
    throw error("cross_entropy: label smoothing must be in [0, 1), got ", eps);
  return {Shape{1}};
}
}  // namespace

OpSchema schema_softmax() {
  return {.name = "softmax", .infer = infer_rows<kSoftmax>, .backward_reads_outputs = true};
}
OpSchema schema_log_softmax() {
  return {.name = "log_softmax", .infer = infer_rows<kLogSoftmax>, .backward_reads_outputs = true};
}
// The forward kernel saves the softmax probabilities; labels are read again in backward.
OpSchema schema_cross_entropy() {
  return {.name = "cross_entropy",
          .min_inputs = 2,
          .max_inputs = 2,
          .infer = infer_cross_entropy,
          .differentiable_inputs = bit(0),
          .backward_reads_inputs = bit(1)};
}

namespace ops {
Var softmax(const Var& x) { return apply(OpKind::softmax, NoAttrs{}, {x})[0]; }
Var log_softmax(const Var& x) { return apply(OpKind::log_softmax, NoAttrs{}, {x})[0]; }
Var cross_entropy(const Var& logits, const Var& labels, float label_smoothing) {
  return apply(OpKind::cross_entropy, CrossEntropyAttrs{label_smoothing}, {logits, labels})[0];
}
}  // namespace ops

}  // namespace cellgraph
