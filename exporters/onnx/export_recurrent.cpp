// ONNX export of a recurrent language model (spec/compile_recurrent.cpp): the whole model over
// a sequence, and its recurrent cell as one time step.
//
// The IR unrolls the cell over the spec's T steps; the model does not. Its time loop is one
// ONNX Scan whose body is the IR's time step 0, translated node for node like any other
// region: every step of the unrolled graph is the same nodes over the same parameters
// (checked below), so the body computes exactly what each step computes, and the model takes
// sequences of any length T (the state after one window is the h0 of the next; T = 1 is one
// step of text generation), in a file the size of one step rather than T. Outside the
// Scan are the embedding lookup (Gather, hence int64 token ids) and the tied decoder
// (MatMul with the transposed embedding matrix, plus the bias) over all T outputs at once, as
// in the IR. In inference form every dropout is the identity, so the step's h_t is both the
// state carried on and the output the decoder reads.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "engine/error.h"
#include "exporters/onnx/emitter.h"
#include "exporters/onnx/export.h"

namespace cellgraph::onnx_export {

namespace {
using detail::Emitter;
using detail::Region;
using ir::NodeId;
using ir::ValueId;

// The step t of a label "t{t}/...", or -1.
int step_of(const std::string& label) {
  if (label.size() < 3 || label[0] != 't') return -1;
  size_t pos = 1;
  int t = 0;
  while (pos < label.size() && label[pos] >= '0' && label[pos] <= '9')
    t = t * 10 + (label[pos++] - '0');
  return pos > 1 && pos < label.size() && label[pos] == '/' ? t : -1;
}

const ir::Node* find_node(const ir::Graph& graph, const std::string& label) {
  for (const ir::Node& n : graph.nodes)
    if (n.label == label) return &n;
  return nullptr;
}

// Time step 0 of the unrolled graph: from x_t (the embedded token, [N, H]) and h_{t-1}
// (graph.state_in) to h_t, its nodes in graph order.
struct TimeStep {
  ValueId x, h_prev, h;
  std::vector<NodeId> nodes;
};

TimeStep first_time_step(const ir::Graph& graph) {
  // Every step must be the same ops in the same order: the Scan body stands for all of them.
  std::map<int, std::vector<OpKind>> ops;
  for (const ir::Node& n : graph.nodes)
    if (const int t = step_of(n.label); t >= 0) ops[t].push_back(n.op);
  CG_ASSERT(!ops.empty() && ops.begin()->first == 0, "a language model has time steps t0/...");
  for (const auto& [t, step] : ops)
    CG_ASSERT(step == ops[0], "time step ", t, " differs from step 0");

  const ir::Node& last = graph.node(graph.value(graph.state_out).producer);
  const size_t slash = last.label.find('/');
  CG_ASSERT(step_of(last.label) >= 0, "the final state is made by a time step, not '", last.label,
            "'");
  const ir::Node* h = find_node(graph, "t0/" + last.label.substr(slash + 1));
  const ir::Node* x = find_node(graph, "t0/x.flatten");
  CG_ASSERT(h != nullptr && x != nullptr, "time step 0 has its x_t and h_t");
  TimeStep step{.x = x->outputs[0], .h_prev = graph.state_in, .h = h->outputs[0], .nodes = {}};
  // The nodes of step 0 that h_t needs, less those before x_t (its slice of the sequence).
  std::set<int32_t> live{step.h.value};
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    const ir::Node& n = graph.nodes[i];
    if (step_of(n.label) != 0 || n.outputs[0] == step.x) continue;
    if (std::none_of(n.outputs.begin(), n.outputs.end(),
                     [&](ValueId o) { return live.count(o.value) != 0; }))
      continue;
    step.nodes.push_back(NodeId{int32_t(i)});
    for (ValueId v : n.inputs)
      if (v.valid()) live.insert(v.value);
  }
  std::reverse(step.nodes.begin(), step.nodes.end());
  return step;
}

void set_ints(onnx::NodeProto& n, const char* name, const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void require_language_model(const ir::Graph& graph) {
  detail::require_fixed(graph);
  CG_ASSERT(graph.state_in.valid() && graph.state_out.valid(), "a language model's graph");
}
}  // namespace

void export_language_model_onnx(const ir::Graph& graph, const ir::ParameterStore& params,
                                const std::string& path, const ExportOptions& options) {
  require_language_model(graph);
  const TimeStep step = first_time_step(graph);
  const ir::Node& decoder = graph.node(graph.value(graph.logits).producer);
  CG_ASSERT(decoder.op == OpKind::linear, "a language model ends in its decoder");
  const ir::Node* lookup = nullptr;
  for (const ir::Node& n : graph.nodes)
    if (n.op == OpKind::embedding) lookup = &n;
  CG_ASSERT(lookup != nullptr, "a language model looks its tokens up");
  const auto id_of = [&](const ir::Node& n) { return NodeId{int32_t(&n - graph.nodes.data())}; };

  Region outer;
  outer.nodes = {id_of(*lookup), id_of(decoder)};
  outer.inputs = {{.name = "tokens", .value = graph.input, .int64 = true},
                  {.name = "h0", .value = graph.state_in}};
  outer.outputs = {{"logits", graph.logits}, {"h_final", graph.state_out}};
  Region body;
  body.nodes = step.nodes;
  body.inputs = {{.name = "h_prev", .value = step.h_prev}, {.name = "x_t", .value = step.x}};
  body.outputs = {{"h_t", step.h}, {"output_t", step.h}};

  const int64_t t_steps = graph.value(graph.input).shape[1];
  detail::write_model(
      graph, params,
      [&](onnx::GraphProto& g) {
        Emitter e(graph, params, false, g);
        for (ValueId v : {graph.input, lookup->outputs[0], decoder.inputs[0], graph.logits})
          e.mark_sequence(v);
        e.begin(outer);
        // Embedding dropout is the identity in inference: the lookup reads the matrix.
        const ValueId table = lookup->inputs[0];
        if (graph.value(table).kind == ir::ValueKind::activation) {
          const ir::Node& dropout = graph.node(graph.value(table).producer);
          CG_ASSERT(dropout.op == OpKind::dropout, "the lookup reads the embedding matrix");
          e.bind(table, e.param_tensor(dropout.inputs[0]));
        }
        e.emit_nodes({outer.nodes[0]});
        onnx::NodeProto& scan = e.node("Scan", {"h0", e.value_name(lookup->outputs[0])},
                                       {"h_final", e.unique("outputs")});
        e.bind(decoder.inputs[0], scan.output(1));
        e.bind(graph.state_out, "h_final");
        onnx::AttributeProto* a = scan.add_attribute();
        a->set_name("body");
        a->set_type(onnx::AttributeProto::GRAPH);
        onnx::GraphProto* body_graph = a->mutable_g();
        body_graph->set_name("time_step");
        Emitter(graph, params, false, *body_graph).emit(body);
        a = scan.add_attribute();
        a->set_name("num_scan_inputs");
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(1);
        set_ints(scan, "scan_input_axes", {1});   // x [N, T, H] -> x_t [N, H]
        set_ints(scan, "scan_output_axes", {1});  // h_t [N, H] -> [N, T, H]
        e.emit_nodes({outer.nodes[1]});
        e.finish();
      },
      path, options,
      {{"cellgraph.model", "language model"},
       {"cellgraph.sequence_length", std::to_string(t_steps)}});
}

void export_recurrent_cell_onnx(const ir::Graph& graph, const ir::ParameterStore& params,
                                const std::string& path, const ExportOptions& options) {
  require_language_model(graph);
  const TimeStep step = first_time_step(graph);
  Region region;
  region.nodes = step.nodes;
  region.inputs = {{.name = "x_t", .value = step.x}, {.name = "h_prev", .value = step.h_prev}};
  region.outputs = {{"h_t", step.h}};
  detail::write_model(graph, params,
                      [&](onnx::GraphProto& g) { Emitter(graph, params, false, g).emit(region); },
                      path, options, {{"cellgraph.cell", "cells.0 (recurrent)"}});
}

}  // namespace cellgraph::onnx_export
