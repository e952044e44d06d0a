// Element-wise ops: activations, arithmetic, scaling by a scalar tensor, dropout, drop-path.
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
std::vector<Shape> same_as_input(const Attrs&, const std::vector<Shape>& in) { return {in[0]}; }

template <const char* Name>
std::vector<Shape> infer_binary(const Attrs&, const std::vector<Shape>& in) {
  require_same(Name, in[0], in[1]);
  return {in[0]};
}
constexpr char kAdd[] = "add";
constexpr char kMul[] = "mul";

std::vector<Shape> infer_scale(const Attrs&, const std::vector<Shape>& in) {
  if (in[1].numel() != 1) throw error("scale: the factor must have one element, got ", in[1].str());
  return {in[0]};
}

std::vector<Shape> infer_dropout(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<DropoutAttrs>(attrs);
  if (!(a.p >= 0.0f && a.p < 1.0f)) throw error("dropout: p must be in [0, 1), got ", a.p);
  return {in[0]};
}

std::vector<Shape> infer_drop_path(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<DropPathAttrs>(attrs);
  if (!(a.p >= 0.0f && a.p < 1.0f)) throw error("drop_path: p must be in [0, 1), got ", a.p);
  if (in[0].rank() < 1) throw error("drop_path: the input needs a batch dimension");
  return {in[0]};
}

// da = dy * b and db = dy * a: an operand is kept only while the other wants a gradient.
BackwardReads mul_backward_reads(const Attrs&, const std::vector<bool>&,
                                 const std::vector<bool>& wanted) {
  return {.inputs = (wanted[1] ? bit(0) : 0u) | (wanted[0] ? bit(1) : 0u)};
}
// dx = s dy reads the one-element s (kept always); ds = <dy, x> reads x.
BackwardReads scale_backward_reads(const Attrs&, const std::vector<bool>&,
                                   const std::vector<bool>& wanted) {
  return {.inputs = wanted[1] ? bit(0) | bit(1) : bit(1)};
}
}  // namespace

// Activations read their output in backward (relu: y > 0; tanh: 1 - y^2; sigmoid: y(1-y));
// relu may read its input instead (x > 0 is the same mask).
OpSchema schema_relu() {
  return {.name = "relu",
          .infer = same_as_input,
          .backward_reads_outputs = true,
          .backward_reads_input_or_output = true,
          .cheap_to_recompute = [](const Attrs&) { return Recompute::elementwise; },
          .shared_per_input = true};
}
OpSchema schema_tanh() {
  return {.name = "tanh", .infer = same_as_input, .backward_reads_outputs = true};
}
OpSchema schema_sigmoid() {
  return {.name = "sigmoid", .infer = same_as_input, .backward_reads_outputs = true};
}
OpSchema schema_negate() { return {.name = "negate", .infer = same_as_input}; }
OpSchema schema_add() {
  return {.name = "add", .min_inputs = 2, .max_inputs = 2, .infer = infer_binary<kAdd>};
}
OpSchema schema_mul() {
  return {.name = "mul",
          .min_inputs = 2,
          .max_inputs = 2,
          .infer = infer_binary<kMul>,
          .backward_reads = mul_backward_reads};
}
OpSchema schema_scale() {
  return {.name = "scale",
          .min_inputs = 2,
          .max_inputs = 2,
          .infer = infer_scale,
          .backward_reads = scale_backward_reads};
}
// The mask is recomputed from (seed, index) in backward, so nothing is saved.
OpSchema schema_dropout() { return {.name = "dropout", .infer = infer_dropout}; }
// Likewise: the per-sample mask is recomputed from (seed, sample).
OpSchema schema_drop_path() { return {.name = "drop_path", .infer = infer_drop_path}; }

namespace ops {
Var relu(const Var& x) { return apply(OpKind::relu, NoAttrs{}, {x})[0]; }
Var tanh(const Var& x) { return apply(OpKind::tanh, NoAttrs{}, {x})[0]; }
Var sigmoid(const Var& x) { return apply(OpKind::sigmoid, NoAttrs{}, {x})[0]; }
Var negate(const Var& x) { return apply(OpKind::negate, NoAttrs{}, {x})[0]; }
Var add(const Var& a, const Var& b) { return apply(OpKind::add, NoAttrs{}, {a, b})[0]; }
Var mul(const Var& a, const Var& b) { return apply(OpKind::mul, NoAttrs{}, {a, b})[0]; }
Var scale(const Var& x, const Var& s) { return apply(OpKind::scale, NoAttrs{}, {x, s})[0]; }
Var dropout(const Var& x, float p, bool training, uint64_t seed) {
  return apply(OpKind::dropout, DropoutAttrs{p, training, seed}, {x})[0];
}
Var drop_path(const Var& x, float p, bool training, uint64_t seed) {
  return apply(OpKind::drop_path, DropPathAttrs{p, training, seed}, {x})[0];
}
}  // namespace ops

}  // namespace cellgraph
