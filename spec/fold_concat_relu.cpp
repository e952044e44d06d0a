#include "spec/fold_concat_relu.h"

#include <cstdint>
#include <variant>
#include <vector>

#include "engine/error.h"

namespace cellgraph::spec {

namespace {
using ir::NodeId;
using ir::ValueId;

// How many nodes read each value, plus one for each of the graph's outputs.
std::vector<int32_t> reader_counts(const ir::Graph& g) {
  std::vector<int32_t> readers(g.values.size(), 0);
  for (const ir::Node& n : g.nodes)
    for (ValueId in : n.inputs)
      if (in.valid()) ++readers[in.index()];
  for (ValueId out : {g.logits, g.aux_logits, g.state_out})
    if (out.valid()) ++readers[out.index()];
  return readers;
}

// The concat node that `relu` can absorb, or an invalid id.
NodeId foldable_concat(const ir::Graph& g, const ir::Node& relu,
                       const std::vector<int32_t>& readers) {
  if (relu.op != OpKind::relu || relu.candidate.valid() || relu.absent_with_input) return {};
  const ValueId in = relu.inputs[0];
  const ir::Value& v = g.value(in);
  if (v.kind != ir::ValueKind::activation || readers[in.index()] != 1) return {};
  const ir::Node& concat = g.node(v.producer);
  if (concat.op != OpKind::concat || concat.candidate.valid() || concat.absent_with_input ||
      std::get<ConcatAttrs>(concat.attrs).relu)
    return {};
  return v.producer;
}

// Drops the marked nodes and values and renumbers what is left, in order (so the nodes stay
// in execution order). No kept node or record may refer to a dropped value.
void compact(ir::Graph& g, const std::vector<bool>& drop_node,
             const std::vector<bool>& drop_value) {
  std::vector<int32_t> node_at(g.nodes.size(), -1), value_at(g.values.size(), -1);
  std::vector<ir::Node> nodes;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!drop_node[i]) {
      node_at[i] = int32_t(nodes.size());
      nodes.push_back(std::move(g.nodes[i]));
    }
  std::vector<ir::Value> values;
  for (size_t i = 0; i < g.values.size(); ++i)
    if (!drop_value[i]) {
      value_at[i] = int32_t(values.size());
      values.push_back(g.values[i]);
    }
  auto value = [&](ValueId& v) {
    if (!v.valid()) return;
    CG_ASSERT(value_at[v.index()] >= 0, "fold_concat_relu: a dropped value is still read");
    v.value = value_at[v.index()];
  };
  for (ir::Node& n : nodes) {
    for (ValueId& v : n.inputs) value(v);
    for (ValueId& v : n.outputs) value(v);
  }
  for (ir::Value& v : values)
    if (v.producer.valid()) {
      CG_ASSERT(node_at[v.producer.index()] >= 0, "fold_concat_relu: a value lost its producer");
      v.producer.value = node_at[v.producer.index()];
    }
  for (ir::Parameter& p : g.params) value(p.value);
  for (ir::Candidate& c : g.candidates) value(c.output);
  for (ValueId* v : {&g.input, &g.logits, &g.aux_logits, &g.state_in, &g.state_out}) value(*v);
  g.nodes = std::move(nodes);
  g.values = std::move(values);
}
}  // namespace

int fold_concat_relu(ir::Graph& graph) {
  if (graph.candidates.empty()) return 0;  // a fixed network: see the header
  const std::vector<int32_t> readers = reader_counts(graph);
  std::vector<bool> drop_node(graph.nodes.size(), false), drop_value(graph.values.size(), false);
  int folded = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& relu = graph.nodes[i];
    const NodeId at = foldable_concat(graph, relu, readers);
    if (!at.valid()) continue;
    ir::Node& concat = graph.nodes[at.index()];
    drop_value[concat.outputs[0].index()] = true;  // read by the ReLU alone
    concat.attrs = ConcatAttrs{.relu = true};
    concat.outputs = relu.outputs;
    concat.cells_sharing = relu.cells_sharing;
    graph.values[relu.outputs[0].index()].producer = at;
    drop_node[i] = true;
    ++folded;
  }
  if (folded > 0) compact(graph, drop_node, drop_value);
  return folded;
}

}  // namespace cellgraph::spec
