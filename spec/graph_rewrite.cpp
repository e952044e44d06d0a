#include "spec/graph_rewrite.h"

#include "engine/error.h"

namespace cellgraph::spec {

using ir::ValueId;

std::vector<int32_t> reader_counts(const ir::Graph& g) {
  std::vector<int32_t> readers(g.values.size(), 0);
  for (const ir::Node& n : g.nodes)
    for (ValueId in : n.inputs)
      if (in.valid()) ++readers[in.index()];
  for (ValueId out : {g.logits, g.aux_logits, g.state_out})
    if (out.valid()) ++readers[out.index()];
  return readers;
}

void compact(ir::Graph& g, const std::vector<bool>& drop_node, const std::vector<bool>& drop_value,
             const char* pass) {
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
    CG_ASSERT(value_at[v.index()] >= 0, pass, ": a dropped value is still read");
    v.value = value_at[v.index()];
  };
  for (ir::Node& n : nodes) {
    for (ValueId& v : n.inputs) value(v);
    for (ValueId& v : n.outputs) value(v);
  }
  for (ir::Value& v : values)
    if (v.producer.valid()) {
      CG_ASSERT(node_at[v.producer.index()] >= 0, pass, ": a value lost its producer");
      v.producer.value = node_at[v.producer.index()];
    }
  for (ir::Parameter& p : g.params) value(p.value);
  for (ir::Candidate& c : g.candidates) value(c.output);
  for (ValueId* v : {&g.input, &g.logits, &g.aux_logits, &g.state_in, &g.state_out}) value(*v);
  g.nodes = std::move(nodes);
  g.values = std::move(values);
}

}  // namespace cellgraph::spec
