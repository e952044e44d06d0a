#include "spec/fold_conv_relu.h"

#include <cstdint>
#include <variant>
#include <vector>

#include "spec/graph_rewrite.h"

namespace cellgraph::spec {

namespace {
using ir::ValueId;

// A depthwise conv (groups == channels, one input channel a group) at stride 1 whose output
// has its input's extent ("same" padding): the convs the depthwise loops fold a ReLU into
// (conv_loops.h, depthwise_fold_fit).
bool takes_relu(const ir::Graph& g, const ir::Node& n, ValueId from) {
  if (n.op != OpKind::conv2d || n.inputs.empty() || n.inputs[0] != from) return false;
  for (size_t i = 1; i < n.inputs.size(); ++i)
    if (n.inputs[i] == from) return false;  // read as a weight too
  const auto& a = std::get<ConvAttrs>(n.attrs);
  const Shape& x = g.value(n.inputs[0]).shape;
  const Shape& w = g.value(n.inputs[1]).shape;
  const bool depthwise = a.groups > 1 && a.groups == x[1] && w[0] == a.groups && w[1] == 1;
  return depthwise && !a.relu_input && a.stride == 1 && 2 * a.padding == (w[2] - 1) * a.dilation &&
         2 * a.padding == (w[3] - 1) * a.dilation;
}

// Whether `v` exists whenever `relu` runs: a skipped candidate's output or a node shared by
// candidates may be absent, except to a node of the same candidate.
bool present_with(const ir::Graph& g, ValueId v, const ir::Node& relu) {
  const ir::Value& value = g.value(v);
  if (value.kind != ir::ValueKind::activation) return true;
  const ir::Node& producer = g.node(value.producer);
  if (producer.absent_with_input) return false;
  return !producer.candidate.valid() || producer.candidate == relu.candidate;
}
}  // namespace

int fold_conv_relu(ir::Graph& graph) {
  if (graph.candidates.empty()) return 0;  // a fixed network: see the header
  const std::vector<int32_t> readers = reader_counts(graph);
  std::vector<int64_t> reader(graph.values.size(), -1);  // a value's last reading node
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    for (ValueId in : graph.nodes[i].inputs)
      if (in.valid()) reader[in.index()] = int64_t(i);
  std::vector<bool> drop_node(graph.nodes.size(), false), drop_value(graph.values.size(), false);
  int folded = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& relu = graph.nodes[i];
    if (relu.op != OpKind::relu) continue;
    const ValueId out = relu.outputs[0];
    // One reader, not a graph output (see the header for why a ReLU read by several convs
    // stays), a conv that takes it, of the ReLU's candidate if it has one, and the ReLU's
    // input there whenever the conv runs.
    if (readers[out.index()] != 1 || reader[out.index()] < 0) continue;
    ir::Node& conv = graph.nodes[size_t(reader[out.index()])];
    if (!takes_relu(graph, conv, out) ||
        (relu.candidate.valid() && conv.candidate != relu.candidate) ||
        !present_with(graph, relu.inputs[0], relu))
      continue;
    conv.inputs[0] = relu.inputs[0];
    std::get<ConvAttrs>(conv.attrs).relu_input = true;
    drop_node[i] = true;
    drop_value[out.index()] = true;
    ++folded;
  }
  if (folded > 0) compact(graph, drop_node, drop_value, "fold_conv_relu");
  return folded;
}

}  // namespace cellgraph::spec
