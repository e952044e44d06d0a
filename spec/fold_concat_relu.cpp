#include "spec/fold_concat_relu.h"

#include <cstdint>
#include <variant>
#include <vector>

#include "spec/graph_rewrite.h"

namespace cellgraph::spec {

namespace {
using ir::NodeId;
using ir::ValueId;

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
  if (folded > 0) compact(graph, drop_node, drop_value, "fold_concat_relu");
  return folded;
}

}  // namespace cellgraph::spec
