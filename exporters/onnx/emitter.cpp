#include "exporters/onnx/emitter.h"

#include <limits>

#include "engine/error.h"

namespace cellgraph::onnx_export::detail {

namespace {
using ir::Node;
using ir::ValueId;
using ir::ValueKind;
using onnx::AttributeProto;
using onnx::NodeProto;
using onnx::TensorProto;

void set_ints(NodeProto& n, const char* name, const std::vector<int64_t>& values) {
  AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void set_int(NodeProto& n, const char* name, int64_t value) {
  AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::INT);
  a->set_i(value);
}

void set_float(NodeProto& n, const char* name, float value) {
  AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(AttributeProto::FLOAT);
  a->set_f(value);
}

std::vector<int64_t> pair(int64_t v) { return {v, v}; }
std::vector<int64_t> quad(int64_t v) { return {v, v, v, v}; }

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
}  // namespace

std::string sanitize(const std::string& name) {
  std::string out = name.empty() ? "unnamed" : name;
  for (char& c : out) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
    if (!keep) c = '_';
  }
  return out;
}

Emitter::Emitter(const ir::Graph& graph, const ir::ParameterStore& params, bool fold_batch_norm,
                 onnx::GraphProto& out)
    : graph_(graph), params_(params), fold_batch_norm_(fold_batch_norm), out_(out) {}

void Emitter::unsupported(const Node& n, const std::string& why) const {
  throw error("node '", n.label, "' (op ", op_name(n.op), "): ", why);
}

std::string Emitter::unique(const std::string& base) {
  const std::string clean = sanitize(base);
  std::string name = clean;
  for (int k = 2; !used_names_.insert(name).second; ++k) name = clean + "_" + std::to_string(k);
  return name;
}

void Emitter::add_value_info(onnx::ValueInfoProto& info, const std::string& name, ValueId v,
                             bool int64) {
  const Shape& shape = graph_.value(v).shape;
  const bool sequence = sequence_values_.count(v.value) != 0;
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(int64 ? TensorProto::INT64 : TensorProto::FLOAT);
  auto* dims = tensor->mutable_shape();
  // IR shapes are per sample: the leading extent is the batch, dynamic in the model; so is
  // a language model's sequence axis where the model runs over any length.
  for (int d = 0; d < shape.rank(); ++d) {
    if (d == 0)
      dims->add_dim()->set_dim_param("N");
    else if (d == 1 && sequence)
      dims->add_dim()->set_dim_param("T");
    else
      dims->add_dim()->set_dim_value(shape[d]);
  }
}

void Emitter::bind(ValueId v, const std::string& name) {
  used_names_.insert(name);
  bound_[v.value] = name;
}

std::string Emitter::value_name(ValueId v) const {
  if (auto b = bound_.find(v.value); b != bound_.end()) return b->second;
  auto it = value_names_.find(v.value);
  CG_ASSERT(it != value_names_.end(), "value ", v.value, " has not been emitted");
  return it->second;
}

std::string Emitter::float_initializer(const std::string& base, const std::vector<int64_t>& dims,
                                       const std::vector<float>& data) {
  std::string name = unique(base);
  TensorProto* t = out_.add_initializer();
  t->set_name(name);
  t->set_data_type(TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  // raw_data is little-endian, as floats are on every platform cellgraph builds for.
  t->set_raw_data(
      std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
  return name;
}

std::string Emitter::int_initializer(const std::string& base, const std::vector<int64_t>& data) {
  std::string name = unique(base);
  TensorProto* t = out_.add_initializer();
  t->set_name(name);
  t->set_data_type(TensorProto::INT64);
  t->add_dims(int64_t(data.size()));
  for (int64_t v : data) t->add_int64_data(v);
  return name;
}

std::string Emitter::param_tensor(ValueId v) {
  auto it = value_names_.find(v.value);
  if (it != value_names_.end()) return it->second;
  const ir::ParamId id = graph_.value(v).param;
  const ir::Parameter& p = graph_.param(id);
  return value_names_[v.value] =
             float_initializer(p.name, p.shape.dims(), params_[id].value().to_vector());
}

std::string Emitter::output_name(ValueId v) {
  auto it = value_names_.find(v.value);
  if (it != value_names_.end()) return it->second;
  const Node& n = graph_.node(graph_.value(v).producer);
  std::string base = n.label;
  if (n.outputs.size() > 1)
    for (size_t o = 0; o < n.outputs.size(); ++o)
      if (n.outputs[o] == v) base += ":" + std::to_string(o);
  return value_names_[v.value] = unique(base);
}

std::string Emitter::input_name(const Node& n, size_t slot) {
  const ValueId v = n.inputs[slot];
  const ir::Value& value = graph_.value(v);
  if (auto b = bound_.find(v.value); b != bound_.end()) return b->second;
  switch (value.kind) {
    case ValueKind::parameter:
    case ValueKind::buffer:
      return param_tensor(v);
    case ValueKind::coefficient:
      unsupported(n, "reads architecture coefficients; a fixed network has none");
    case ValueKind::state:  // a recurrent network's carried state: a model input
    case ValueKind::input:
    case ValueKind::activation:
      break;
  }
  const bool external =
      value.kind != ValueKind::activation || !in_region_.count(value.producer.value);
  if (!external) {
    auto it = value_names_.find(v.value);
    CG_ASSERT(it != value_names_.end(), "value of '", n.label, "' read before it was emitted");
    return it->second;
  }
  const Region::Input* fallback = nullptr;
  for (const Region::Input& in : region_->inputs) {
    if (in.value != v) continue;
    if (in.reader_prefix.empty())
      fallback = &in;
    else if (starts_with(n.label, in.reader_prefix))
      return in.name;
  }
  CG_ASSERT(fallback != nullptr, "node '", n.label, "' reads a value from outside the region");
  return fallback->name;
}

NodeProto& Emitter::node(const std::string& op_type, const Names& inputs, const Names& outputs) {
  NodeProto* n = out_.add_node();
  n->set_op_type(op_type);
  // Output names are unique, so the first one names the node.
  n->set_name(outputs.front());
  for (const std::string& in : inputs) n->add_input(in);
  for (const std::string& o : outputs) n->add_output(o);
  return *n;
}

void Emitter::emit(const Region& region) {
  begin(region);
  emit_nodes(region.nodes);
  finish();
}

void Emitter::begin(const Region& region) {
  region_ = &region;
  for (ir::NodeId id : region.nodes) in_region_.insert(id.value);
  for (const Region::Input& in : region.inputs) {
    CG_ASSERT(used_names_.insert(in.name).second, "duplicate input name ", in.name);
    add_value_info(*out_.add_input(), in.name, in.value, in.int64);
  }
  for (const auto& [name, v] : region.outputs) {
    CG_ASSERT(used_names_.insert(name).second, "duplicate output name ", name);
    const ir::Value& value = graph_.value(v);
    // A value output twice is computed under its first name.
    if (value.kind == ValueKind::activation && in_region_.count(value.producer.value))
      value_names_.try_emplace(v.value, name);
  }
  plan_folding(region);
}

void Emitter::emit_nodes(const std::vector<ir::NodeId>& nodes) {
  std::map<int32_t, int32_t> conv_of_bn;
  for (const auto& [conv, bn] : folded_into_) conv_of_bn[bn] = conv;
  for (ir::NodeId id : nodes) {
    if (folded_into_.count(id.value)) continue;  // emitted with its BN
    auto folded = conv_of_bn.find(id.value);
    if (folded != conv_of_bn.end())
      emit_folded(graph_.node(ir::NodeId{folded->second}), graph_.node(id));
    else
      emit_node(graph_.node(id));
  }
}

void Emitter::finish() {
  const Region& region = *region_;
  for (const auto& [name, v] : region.outputs) {
    std::string source;
    if (auto b = bound_.find(v.value); b != bound_.end()) {
      source = b->second;
    } else if (auto it = value_names_.find(v.value); it != value_names_.end()) {
      source = it->second;
    } else {
      // A cell whose output is one of its inputs (a skip-only node): pass it through.
      for (const Region::Input& in : region.inputs)
        if (in.value == v && in.reader_prefix.empty()) source = in.name;
    }
    CG_ASSERT(!source.empty(), "output ", name, " is not computed in the region");
    if (source != name) node("Identity", {source}, {name});
    add_value_info(*out_.add_output(), name, v);
  }
  std::set<std::string> boundary;
  for (const auto& [name, v] : region.outputs) boundary.insert(name);
  for (const auto& [id, name] : value_names_) {
    const ir::Value& value = graph_.value(ValueId{id});
    if (value.kind == ValueKind::activation && !boundary.count(name))
      add_value_info(*out_.add_value_info(), name, ValueId{id});
  }
}

void Emitter::emit_node(const Node& n) {
  auto in = [&](size_t slot) { return input_name(n, slot); };
  auto out = [&]() { return output_name(n.outputs[0]); };
  auto unary = [&](const char* op_type) { node(op_type, {in(0)}, {out()}); };
  switch (n.op) {
    case OpKind::conv2d:
      return emit_conv(n);
    case OpKind::batch_norm:
      return emit_batch_norm(n);
    case OpKind::relu:
      return unary("Relu");
    case OpKind::tanh:
      return unary("Tanh");
    case OpKind::sigmoid:
      return unary("Sigmoid");
    case OpKind::negate:
      return unary("Neg");
    case OpKind::global_avg_pool:
      return unary("GlobalAveragePool");
    case OpKind::dropout:  // inference: the identity
    case OpKind::drop_path:
      return unary("Identity");
    case OpKind::max_pool:
    case OpKind::avg_pool:
      return emit_pool(n);
    case OpKind::flatten:
      set_int(node("Flatten", {in(0)}, {out()}), "axis", 1);
      return;
    case OpKind::highway: {  // s + sigmoid(c) (fh - s), as four ONNX nodes
      const std::string gate = unique(n.label + ".gate"), diff = unique(n.label + ".diff"),
                        gated = unique(n.label + ".gated");
      node("Sigmoid", {in(1)}, {gate});
      node("Sub", {in(2), in(0)}, {diff});
      node("Mul", {gate, diff}, {gated});
      node("Add", {in(0), gated}, {out()});
      return;
    }
    case OpKind::linear:
      return emit_linear(n);
    case OpKind::embedding:  // rows of the weight at int64 indices (the model's token ids)
      node("Gather", {in(0), in(1)}, {out()});
      return;
    case OpKind::add:
      node("Add", {in(0), in(1)}, {out()});
      return;
    case OpKind::mul:
    case OpKind::scale:  // scale's s has one element and broadcasts
      node("Mul", {in(0), in(1)}, {out()});
      return;
    case OpKind::add_n: {
      Names inputs;
      for (size_t i = 0; i < n.inputs.size(); ++i) inputs.push_back(in(i));
      node(inputs.size() == 1 ? "Identity" : inputs.size() == 2 ? "Add" : "Sum", inputs, {out()});
      return;
    }
    case OpKind::concat: {
      Names inputs;
      for (size_t i = 0; i < n.inputs.size(); ++i) inputs.push_back(in(i));
      if (!std::get<ConcatAttrs>(n.attrs).relu) {
        set_int(node("Concat", inputs, {out()}), "axis", 1);
        return;
      }
      // A folded ReLU (spec/fold_concat_relu.h; search networks only, which export refuses,
      // but the op says what it computes either way).
      const std::string joined = unique(n.label + ".joined");
      set_int(node("Concat", inputs, {joined}), "axis", 1);
      node("Relu", {joined}, {out()});
      return;
    }
    case OpKind::split: {
      const std::string sizes =
          int_initializer(n.label + ".split", std::get<SplitAttrs>(n.attrs).sizes);
      Names outputs;
      for (ValueId o : n.outputs) outputs.push_back(output_name(o));
      set_int(node("Split", {in(0), sizes}, outputs), "axis", 1);
      return;
    }
    case OpKind::softmax:
    case OpKind::log_softmax:
      if (graph_.value(n.inputs[0]).shape.rank() != 2)
        unsupported(n, "softmax is exported for [N, C] inputs only");
      set_int(node(n.op == OpKind::softmax ? "Softmax" : "LogSoftmax", {in(0)}, {out()}), "axis",
              1);
      return;
    case OpKind::slice:
      return emit_slice(n);
    case OpKind::zero:
      return emit_zero(n);
    case OpKind::weighted_sum:
      unsupported(n,
                  "a weighted sum of candidates (a mixed edge) cannot appear in a fixed "
                  "network; derive the architecture first");
    case OpKind::reshape: {
      const auto& a = std::get<ReshapeAttrs>(n.attrs);
      if (!a.keep_batch)
        unsupported(n, "its target shape is fixed at batch 1, so it has no batch-independent form");
      // ONNX Reshape copies the input's extent where the target says 0: the batch.
      std::vector<int64_t> shape = a.shape.dims();
      shape[0] = 0;
      node("Reshape", {in(0), int_initializer(n.label + ".shape", shape)}, {out()});
      return;
    }
    case OpKind::matmul:
    case OpKind::cross_entropy:
    case OpKind::sum:
      break;
  }
  unsupported(n, "the ONNX exporter has no mapping for this op");
}

// x wᵀ + b: Gemm for [N, K]; over more dimensions ([N, T, K], a language model's decoder)
// MatMul with the transposed weight, then the bias.
void Emitter::emit_linear(const Node& n) {
  const bool bias = n.inputs.size() > 2 && n.inputs[2].valid();
  if (graph_.value(n.inputs[0]).shape.rank() == 2) {
    Names inputs{input_name(n, 0), input_name(n, 1)};
    if (bias) inputs.push_back(input_name(n, 2));
    set_int(node("Gemm", inputs, {output_name(n.outputs[0])}), "transB", 1);
    return;
  }
  const std::string transposed = unique(n.label + ".weight_t");
  set_ints(node("Transpose", {input_name(n, 1)}, {transposed}), "perm", {1, 0});
  if (!bias) {
    node("MatMul", {input_name(n, 0), transposed}, {output_name(n.outputs[0])});
    return;
  }
  const std::string product = unique(n.label + ".matmul");
  node("MatMul", {input_name(n, 0), transposed}, {product});
  node("Add", {product, input_name(n, 2)}, {output_name(n.outputs[0])});
}

void Emitter::conv_node(const Node& conv, Names inputs, const std::string& output) {
  const auto& a = std::get<ConvAttrs>(conv.attrs);
  const Shape& w = graph_.value(conv.inputs[1]).shape;
  if (a.relu_input) {  // a folded ReLU (spec/fold_conv_relu.h): Relu, then the Conv
    const std::string rectified = unique(conv.label + ".relu");
    node("Relu", {inputs[0]}, {rectified});
    inputs[0] = rectified;
  }
  NodeProto& n = node("Conv", inputs, {output});
  set_ints(n, "kernel_shape", {w[2], w[3]});
  set_ints(n, "strides", pair(a.stride));
  set_ints(n, "pads", quad(a.padding));
  set_ints(n, "dilations", pair(a.dilation));
  set_int(n, "group", a.groups);
}

void Emitter::emit_conv(const Node& n) {
  Names inputs{input_name(n, 0), input_name(n, 1)};

  if (n.inputs.size() > 2 && n.inputs[2].valid()) inputs.push_back(input_name(n, 2));
  conv_node(n, inputs, output_name(n.outputs[0]));
}

void Emitter::emit_batch_norm(const Node& n) {
  const auto& a = std::get<BatchNormAttrs>(n.attrs);
  const int64_t c = graph_.value(n.inputs[0]).shape[1];
  // Without affine parameters the scale is 1 and the shift 0; ONNX needs them as tensors.
  const std::string gamma =
      n.inputs[1].valid()
          ? input_name(n, 1)
          : float_initializer(n.label + ".gamma", {c}, std::vector<float>(size_t(c), 1.0f));
  const std::string beta =
      n.inputs[2].valid()
          ? input_name(n, 2)
          : float_initializer(n.label + ".beta", {c}, std::vector<float>(size_t(c), 0.0f));
  NodeProto& bn = node("BatchNormalization",
                       {input_name(n, 0), gamma, beta, input_name(n, 3), input_name(n, 4)},
                       {output_name(n.outputs[0])});
  set_float(bn, "epsilon", a.eps);
}

void Emitter::emit_pool(const Node& n) {
  const auto& a = std::get<PoolAttrs>(n.attrs);
  const bool is_max = n.op == OpKind::max_pool;
  NodeProto& p =
      node(is_max ? "MaxPool" : "AveragePool", {input_name(n, 0)}, {output_name(n.outputs[0])});
  set_ints(p, "kernel_shape", pair(a.kernel));
  set_ints(p, "strides", pair(a.stride));
  set_ints(p, "pads", quad(a.padding));
  // cellgraph averages over the window's pixels inside the image (the DARTS convention).
  if (!is_max) set_int(p, "count_include_pad", 0);
}

void Emitter::emit_slice(const Node& n) {
  const auto& a = std::get<SliceAttrs>(n.attrs);
  std::vector<int64_t> axes;
  for (size_t d = 0; d < a.starts.size(); ++d) axes.push_back(int64_t(d));
  // Open ends are INT64_MAX in the IR; ONNX Slice clamps them to the extent the same way.
  const Names inputs{input_name(n, 0), int_initializer(n.label + ".starts", a.starts),
                     int_initializer(n.label + ".ends", a.ends),
                     int_initializer(n.label + ".axes", axes),
                     int_initializer(n.label + ".steps", a.steps)};
  node("Slice", inputs, {output_name(n.outputs[0])});
}

// zeros shaped like x, H and W strided: ConstantOfShape of the shape of x's strided slice,
// so it follows the batch size, and the result is 0 even where x holds inf or NaN.
void Emitter::emit_zero(const Node& n) {
  const int stride = std::get<ZeroAttrs>(n.attrs).stride;
  std::string source = input_name(n, 0);
  if (stride > 1) {
    constexpr int64_t kOpen = std::numeric_limits<int64_t>::max();
    const std::string strided = unique(n.label + ".strided");
    node("Slice",
         {source, int_initializer(n.label + ".starts", {0, 0}),
          int_initializer(n.label + ".ends", {kOpen, kOpen}),
          int_initializer(n.label + ".axes", {2, 3}),
          int_initializer(n.label + ".steps", {stride, stride})},
         {strided});
    source = strided;
  }
  const std::string shape = unique(n.label + ".shape");
  node("Shape", {source}, {shape});
  NodeProto& fill = node("ConstantOfShape", {shape}, {output_name(n.outputs[0])});
  AttributeProto* value = fill.add_attribute();
  value->set_name("value");
  value->set_type(AttributeProto::TENSOR);
  TensorProto* zero = value->mutable_t();
  zero->set_data_type(TensorProto::FLOAT);
  zero->add_dims(1);
  zero->add_float_data(0.0f);
}

}  // namespace cellgraph::onnx_export::detail
