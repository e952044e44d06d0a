#include "spec/builder.h"

#include <cstdint>

#include "engine/error.h"
#include "ops/schema.h"

namespace cellgraph::ir {

ValueId Builder::add_value(Value v) {
  graph_.values.push_back(std::move(v));
  return ValueId{static_cast<int32_t>(graph_.values.size() - 1)};
}

ValueId Builder::input(const Shape& per_sample_shape) {
  return add_value(Value{.shape = per_sample_shape, .kind = ValueKind::input});
}

ValueId Builder::state(const Shape& per_sample_shape) {
  return add_value(Value{.shape = per_sample_shape, .kind = ValueKind::state});
}

ValueId Builder::parameter(const std::string& name, const Shape& shape, Init init, int64_t fan_in) {
  const ParamId id{static_cast<int32_t>(graph_.params.size())};
  const ValueId v = add_value(Value{.shape = shape, .kind = ValueKind::parameter, .param = id});
  graph_.params.push_back(Parameter{name, shape, init, fan_in, false, candidate_, v});
  return v;
}

ValueId Builder::buffer(const std::string& name, const Shape& shape, Init init) {
  const ParamId id{static_cast<int32_t>(graph_.params.size())};
  const ValueId v = add_value(Value{.shape = shape, .kind = ValueKind::buffer, .param = id});
  graph_.params.push_back(Parameter{name, shape, init, 1, true, candidate_, v});
  return v;
}

ValueId Builder::scalar(const std::string& name, double value, bool trainable) {
  const ValueId v =
      trainable ? parameter(name, {1}, Init::constant) : buffer(name, {1}, Init::constant);
  graph_.params.back().init_value = value;
  return v;
}

ValueId Builder::coefficients(ArchGroupId group) {
  const ArchGroup& g = graph_.arch_group(group);
  return add_value(Value{.shape = Shape{g.rows, int64_t(g.columns.size())},
                         .kind = ValueKind::coefficient,
                         .arch = group});
}

std::vector<ValueId> Builder::op(OpKind kind, const Attrs& attrs,
                                 const std::vector<ValueId>& inputs, const std::string& label) {
  std::vector<Shape> shapes;
  shapes.reserve(inputs.size());
  for (ValueId v : inputs) shapes.push_back(v.valid() ? shape(v) : Shape{});
  std::vector<Shape> out_shapes;
  try {
    out_shapes = schema(kind).infer(attrs, shapes);
  } catch (const Error& e) {
    throw error(context_.empty() ? "" : context_ + ": ", label, ": ", e.what());
  }
  const NodeId node{static_cast<int32_t>(graph_.nodes.size())};
  if (schema(kind).shared_per_input) {
    CG_ASSERT(inputs.size() == 1 && inputs[0].valid(), label, ": a shared op has one input");
    const auto [it, fresh] =
        shared_.try_emplace({static_cast<int>(kind), inputs[0].value, share_scope_}, node);
    if (!fresh) return share(graph_.nodes[it->second.index()]);
  }
  Node n{.op = kind, .attrs = attrs, .inputs = inputs, .candidate = candidate_, .label = label};
  for (const Shape& s : out_shapes)
    n.outputs.push_back(
        add_value(Value{.shape = s, .kind = ValueKind::activation, .producer = node}));
  graph_.nodes.push_back(std::move(n));
  return graph_.nodes.back().outputs;
}

std::vector<ValueId> Builder::share(Node& n) {
  if (share_across_cells_) ++n.cells_sharing;
  if (n.candidate != candidate_) {
    n.candidate = CandidateId{};
    n.absent_with_input = true;
  }
  // The first reader's label would misname it; one node per input and scope makes this
  // one unique.
  const Value& in = graph_.value(n.inputs[0]);
  std::string source = in.producer.valid() ? graph_.node(in.producer).label : "input";
  const std::string prefix = share_scope_.empty() ? "" : share_scope_ + ".";
  if (source.rfind(prefix, 0) == 0) source.erase(0, prefix.size());
  n.label = prefix + op_name(n.op) + "_of." + source;
  return n.outputs;
}

ValueId batch_norm(Builder& b, ValueId x, const std::string& name, BnOptions options) {
  const int64_t c = b.shape(x)[1];
  ValueId gamma, beta;
  if (options.affine) {
    gamma = b.parameter(name + ".gamma", {c}, Init::ones);
    beta = b.parameter(name + ".beta", {c}, Init::zeros);
  }
  const ValueId mean = b.buffer(name + ".running_mean", {c}, Init::zeros);
  const ValueId var = b.buffer(name + ".running_var", {c}, Init::ones);
  return b.op1(OpKind::batch_norm, BatchNormAttrs{}, {x, gamma, beta, mean, var}, name);
}

ValueId conv(Builder& b, ValueId x, int64_t out_channels, int kernel, ConvAttrs attrs,
             const std::string& name) {
  const int64_t in = b.shape(x)[1];
  const ValueId w = b.parameter(name + ".weight", {out_channels, in / attrs.groups, kernel, kernel},
                                Init::kaiming_uniform);
  return b.op1(OpKind::conv2d, attrs, {x, w, ValueId{}}, name);
}

ValueId relu_conv_bn(Builder& b, ValueId x, int64_t out_channels, int kernel, int stride,
                     int padding, bool affine, const std::string& name,
                     const std::string& bn_name) {
  const ValueId r = b.op1(OpKind::relu, NoAttrs{}, {x}, name + ".relu");
  const ValueId c = conv(b, r, out_channels, kernel,
                         ConvAttrs{.stride = stride, .padding = padding}, name + ".conv");
  return batch_norm(b, c, bn_name.empty() ? name + ".bn" : bn_name, {affine});
}

ValueId factorized_reduce(Builder& b, ValueId x, int64_t out_channels, bool affine,
                          const std::string& name, const std::string& bn_name) {
  if (out_channels % 2 != 0)
    throw error(b.context(), ": ", name, ": factorized reduce needs an even channel count, got ",
                out_channels);
  const ValueId r = b.op1(OpKind::relu, NoAttrs{}, {x}, name + ".relu");
  // DARTS writes the two paths as 1x1 stride-2 convs of x and of x shifted by one pixel
  // (x[:, :, 1:, 1:]). A 1x1 conv reads only the pixels it is centred on, so each path is
  // the same conv at stride 1 on every second pixel: x[:, :, 0::2, 0::2] and
  // x[:, :, 1::2, 1::2]. Same values and weights; a quarter of the data reaches the convs,
  // which then run as plain GEMMs without im2col or layout reorders.
  // Ends are open (clamped to the extent): IR attributes must not depend on the batch.
  constexpr int64_t kOpen = INT64_MAX;
  auto every_second = [&](int64_t offset, const std::string& label) {
    return b.op1(OpKind::slice,
                 SliceAttrs{{0, 0, offset, offset}, {kOpen, kOpen, kOpen, kOpen}, {1, 1, 2, 2}},
                 {r}, label);
  };
  const ValueId a =
      conv(b, every_second(0, name + ".even"), out_channels / 2, 1, ConvAttrs{}, name + ".conv1");
  const ValueId c =
      conv(b, every_second(1, name + ".shift"), out_channels / 2, 1, ConvAttrs{}, name + ".conv2");
  const ValueId cat = b.op1(OpKind::concat, ConcatAttrs{}, {a, c}, name + ".concat");
  return batch_norm(b, cat, bn_name.empty() ? name + ".bn" : bn_name, {affine});
}

}  // namespace cellgraph::ir
