// BN folding: a BN that directly follows a conv becomes part of that conv's weights.
#include <cmath>

#include "exporters/onnx/emitter.h"

namespace cellgraph::onnx_export::detail {

using ir::Node;
using ir::ValueId;
using ir::ValueKind;

void Emitter::plan_folding(const Region& region) {
  if (!fold_batch_norm_) return;
  std::map<int32_t, int> readers;
  for (ir::NodeId id : region.nodes)
    for (ValueId in : graph_.node(id).inputs)
      if (in.valid()) ++readers[in.value];
  for (const auto& [name, v] : region.outputs) ++readers[v.value];
  auto is = [&](ValueId v, ValueKind kind) { return v.valid() && graph_.value(v).kind == kind; };
  auto absent_or_weight = [&](const Node& n, size_t slot) {
    return slot >= n.inputs.size() || !n.inputs[slot].valid() ||
           is(n.inputs[slot], ValueKind::parameter);
  };
  for (ir::NodeId id : region.nodes) {
    const Node& bn = graph_.node(id);
    if (bn.op != OpKind::batch_norm) continue;
    const ValueId x = bn.inputs[0];
    const ir::Value& xv = graph_.value(x);
    if (xv.kind != ValueKind::activation || !in_region_.count(xv.producer.value)) continue;
    const Node& conv = graph_.node(xv.producer);
    // Folding rewrites the conv's weights, so nothing else may see its unfolded output.
    if (conv.op != OpKind::conv2d || readers[x.value] != 1) continue;
    // The folded weights are computed here, so every operand must be a stored tensor.
    if (!is(conv.inputs[1], ValueKind::parameter) || !absent_or_weight(conv, 2) ||
        !absent_or_weight(bn, 1) || !absent_or_weight(bn, 2) ||
        !is(bn.inputs[3], ValueKind::buffer) || !is(bn.inputs[4], ValueKind::buffer))
      continue;
    folded_into_[xv.producer.value] = id.value;
  }
}

// w' = w·γ/√(var+ε) per output channel, b' = β + (b − mean)·γ/√(var+ε).
void Emitter::emit_folded(const Node& conv, const Node& bn) {
  const float eps = std::get<BatchNormAttrs>(bn.attrs).eps;
  auto data = [&](ValueId v) { return params_[graph_.value(v).param].value().to_vector(); };
  auto optional = [&](const Node& n, size_t slot) {
    return slot < n.inputs.size() && n.inputs[slot].valid() ? data(n.inputs[slot])
                                                            : std::vector<float>();
  };
  const Shape& wshape = graph_.value(conv.inputs[1]).shape;
  const auto out_c = static_cast<size_t>(wshape[0]);
  std::vector<float> w = data(conv.inputs[1]);
  const std::vector<float> bias = optional(conv, 2), gamma = optional(bn, 1),
                           beta = optional(bn, 2), mean = data(bn.inputs[3]),
                           var = data(bn.inputs[4]);
  const size_t per_out = w.size() / out_c;
  std::vector<float> b(out_c);
  for (size_t c = 0; c < out_c; ++c) {
    // In double, so that folding adds no rounding beyond the final cast to float.
    const double s = (gamma.empty() ? 1.0 : double(gamma[c])) / std::sqrt(double(var[c]) + eps);
    for (size_t k = 0; k < per_out; ++k) w[c * per_out + k] = float(w[c * per_out + k] * s);
    b[c] = float((beta.empty() ? 0.0 : double(beta[c])) +
                 ((bias.empty() ? 0.0 : double(bias[c])) - double(mean[c])) * s);
  }
  const std::string wname = float_initializer(conv.label + ".weight_bn_folded", wshape.dims(), w);
  const std::string bname = float_initializer(bn.label + ".bias_bn_folded", {wshape[0]}, b);
  conv_node(conv, {input_name(conv, 0), wname, bname}, output_name(bn.outputs[0]));
}

}  // namespace cellgraph::onnx_export::detail
