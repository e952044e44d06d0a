#include "exporters/onnx/export.h"

#include <algorithm>
#include <set>

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "engine/error.h"
#include "engine/io/file.h"
#include "engine/optim/divergence.h"
#include "engine/sched/plan.h"
#include "exporters/onnx/emitter.h"

#ifndef CELLGRAPH_VERSION
#define CELLGRAPH_VERSION "unknown"
#endif

namespace cellgraph::onnx_export {

namespace {
using detail::Region;
using ir::NodeId;
using ir::ValueId;
using ir::ValueKind;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

int max_opset() {
  return onnx::OpSchemaRegistry::DomainToVersionRange::Instance()
      .Map()
      .at(onnx::ONNX_DOMAIN)
      .second;
}
}  // namespace

namespace detail {
void require_fixed(const ir::Graph& graph) {
  if (!graph.mixed_edges.empty()) {
    const ir::MixedEdge& m = graph.mixed_edges.front();
    std::string ops;
    for (const std::string& op : graph.arch_group(m.arch).columns)
      ops += (ops.empty() ? "" : ", ") + op;
    throw error("cells.", m.instance, " (cell '", m.cell, "') node ", m.node, " edge e", m.edge,
                " is a mixed edge over {", ops,
                "}; ONNX export needs a fixed network with one op per edge (derive the "
                "architecture first)");
  }
  if (!graph.candidates.empty())
    throw error("'", graph.candidates.front().label,
                "' is a candidate op of a mixed edge; ONNX export needs a fixed network");
  if (!graph.arch_groups.empty())
    throw error("architecture parameters '", graph.arch_groups.front().name,
                "' remain in the graph; ONNX export needs a fixed network");
}

void write_model(const ir::Graph& graph, const ir::ParameterStore& params,
                 const std::function<void(onnx::GraphProto&)>& build, const std::string& path,
                 const ExportOptions& options,
                 const std::map<std::string, std::string>& extra_metadata) {
  for (size_t i = 0; i < graph.params.size(); ++i)
    if (!all_finite(params.all()[i].value()))
      throw error(path, ": parameter '", graph.params[i].name,
                  "' holds inf or NaN (the run that trained it diverged); refusing to export it");
  if (options.opset < 13 || options.opset > max_opset())
    throw error(path, ": ONNX opset ", options.opset, " is not supported; expected 13 to ",
                max_opset());
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("cellgraph");
  model.set_producer_version(CELLGRAPH_VERSION);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain(onnx::ONNX_DOMAIN);
  opset->set_version(options.opset);
  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(detail::sanitize(options.graph_name));
  try {
    build(*g);
  } catch (const Error& e) {
    throw error(path, ": cannot export: ", e.what());
  }
  std::map<std::string, std::string> metadata = options.metadata;
  metadata.insert(extra_metadata.begin(), extra_metadata.end());
  for (const auto& [key, value] : metadata) {
    onnx::StringStringEntryProto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(value);
  }
  // The checker validates the structure; strict shape inference then recomputes every
  // shape and fails on any disagreement with the declared ones (ours come from the IR).
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1, false));
  } catch (const std::exception& e) {
    throw error(path, ": the exported model fails ONNX validation (a cellgraph bug): ", e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    throw error(path, ": cannot serialise the ONNX model (over protobuf's 2 GiB limit?)");
  io::write_file_atomic(path, bytes);
}
}  // namespace detail

namespace {
using detail::require_fixed;

// Builds, checks and writes the model of one region; every Error names `path`.
void write_model(const ir::Graph& graph, const ir::ParameterStore& params, const Region& region,
                 const std::string& path, const ExportOptions& options,
                 const std::map<std::string, std::string>& extra_metadata) {
  detail::write_model(
      graph, params,
      [&](onnx::GraphProto& g) {
        detail::Emitter(graph, params, options.fold_batch_norm, g).emit(region);
      },
      path, options, extra_metadata);
}

// The k of every "cells.<k>." label, ascending.
std::vector<int> instances(const ir::Graph& graph) {
  std::set<int> found;
  for (const ir::Node& n : graph.nodes) {
    if (!starts_with(n.label, "cells.")) continue;
    size_t pos = 6;
    int k = 0;
    bool digits = false;
    while (pos < n.label.size() && n.label[pos] >= '0' && n.label[pos] <= '9') {
      k = k * 10 + (n.label[pos++] - '0');
      digits = true;
    }
    if (digits && pos < n.label.size() && n.label[pos] == '.') found.insert(k);
  }
  return {found.begin(), found.end()};
}
}  // namespace

void export_onnx(const ir::Graph& graph, const ir::ParameterStore& params, const std::string& path,
                 const ExportOptions& options) {
  require_fixed(graph);
  if (graph.state_in.valid()) return export_language_model_onnx(graph, params, path, options);
  if (graph.value(graph.input).shape.rank() != 4)
    throw error(path, ": the network input ", graph.value(graph.input).shape.str(),
                " is not an image batch [N, C, H, W]");
  Region region;
  // The executor's plan: exactly the nodes cellgraph runs, in its order.
  region.nodes = sched::make_plan(graph, sched::all_active(graph)).order;
  region.inputs.push_back({"images", graph.input, ""});
  region.outputs.emplace_back("logits", graph.logits);
  write_model(graph, params, region, path, options, {});
}

CellBoundary cell_boundary(const ir::Graph& graph, int instance) {
  CellBoundary b{.instance = instance, .prefix = "cells." + std::to_string(instance) + "."};
  std::set<int32_t> inside;
  bool has_add = false, has_conv_a = false;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const std::string& label = graph.nodes[i].label;
    if (!starts_with(label, b.prefix)) continue;
    inside.insert(int32_t(i));
    has_add |= label == b.prefix + "add";
    has_conv_a |= starts_with(label, b.prefix + "conv_a.");
  }
  const std::string where = "cells." + std::to_string(instance);
  if (inside.empty())
    throw error("the network has no cell instance ", where, " (no node is labelled '", b.prefix,
                "...')");
  if (has_add && has_conv_a) throw error(where, " is a residual block, not a cell");
  // Inputs: values read inside and made outside. Output: the value made inside that a
  // later stage (or the head) reads.
  std::map<int32_t, std::set<std::string>> readers;  // external value -> reader roles
  std::set<int32_t> outputs;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& n = graph.nodes[i];
    const bool in_cell = inside.count(int32_t(i)) != 0;
    for (ValueId v : n.inputs) {
      if (!v.valid()) continue;
      const ir::Value& value = graph.value(v);
      if (value.kind != ValueKind::activation && value.kind != ValueKind::input) continue;
      const bool made_inside =
          value.kind == ValueKind::activation && inside.count(value.producer.value) != 0;
      if (in_cell && !made_inside) {
        const std::string role = starts_with(n.label, b.prefix + "pre0.")   ? "pre0"
                                 : starts_with(n.label, b.prefix + "pre1.") ? "pre1"
                                                                            : "edge";
        readers[v.value].insert(role);
      } else if (!in_cell && made_inside) {
        outputs.insert(v.value);
      }
    }
  }
  const ir::Value& logits = graph.value(graph.logits);
  if (logits.kind == ValueKind::activation && inside.count(logits.producer.value))
    outputs.insert(graph.logits.value);
  if (outputs.size() != 1)
    throw error(where, ": expected the cell to hand one value to the next stage, found ",
                outputs.size());
  b.output = ValueId{*outputs.begin()};
  std::vector<int32_t> ext;
  ext.reserve(readers.size());
  for (const auto& [v, roles] : readers) ext.push_back(v);  // ascending: c_{k-2} was made first
  if (ext.empty() || ext.size() > 2)
    throw error(where, ": expected one or two cell inputs, found ", ext.size());
  if (ext.size() == 2) {
    // Preprocessing labels say which input is which when they exist.
    if (readers[ext[1]].count("pre0") && !readers[ext[0]].count("pre0")) std::swap(ext[0], ext[1]);
    b.inputs = {{"c_km2", ValueId{ext[0]}}, {"c_km1", ValueId{ext[1]}}};
  } else if (readers[ext[0]].count("pre0") && readers[ext[0]].count("pre1")) {
    b.inputs = {{"c_km2", ValueId{ext[0]}}, {"c_km1", ValueId{ext[0]}}};
  } else {
    b.inputs = {{"c_km1", ValueId{ext[0]}}};
  }
  const Shape& in = graph.value(b.inputs.back().value).shape;
  const Shape& out = graph.value(b.output).shape;
  b.reduction = in.rank() == 4 && out.rank() == 4 && out[2] < in[2];
  return b;
}

int find_cell_instance(const ir::Graph& graph, const std::string& cell_type) {
  const bool want_reduction = cell_type == "reduce" || cell_type == "reduction";
  if (!want_reduction && cell_type != "normal")
    throw error("cannot tell cell type '", cell_type,
                "' from the network alone; expected 'normal' or 'reduce' (or give the spec)");
  for (int k : instances(graph)) {
    CellBoundary b;
    try {
      b = cell_boundary(graph, k);
    } catch (const Error&) {
      continue;  // a residual block
    }
    if (b.reduction == want_reduction) return k;
  }
  throw error("the network has no ", want_reduction ? "reduction" : "normal", " cell");
}

int find_cell_instance(const spec::Space& space, const std::string& cell_type) {
  int index = 0;
  std::string used;
  for (const spec::Stage& stage : space.network.body) {
    if (stage.cell == cell_type) return index;
    if (!stage.cell.empty() && used.find("'" + stage.cell + "'") == std::string::npos)
      used += (used.empty() ? "'" : ", '") + stage.cell + "'";
    index += stage.repeat;
  }
  throw error(space.file, ": the network body uses no cell '", cell_type, "'; expected one of ",
              used.empty() ? "(none)" : used);
}

void export_cell_onnx(const ir::Graph& graph, const ir::ParameterStore& params, int instance,
                      const std::string& path, const ExportOptions& options) {
  require_fixed(graph);
  if (graph.state_in.valid()) {
    if (instance != 0) throw error("a language model has one cell, cells.0; no cells.", instance);
    return export_recurrent_cell_onnx(graph, params, path, options);
  }
  const CellBoundary b = cell_boundary(graph, instance);
  Region region;
  const bool split = b.inputs.size() == 2 && b.inputs[0].value == b.inputs[1].value;
  for (const CellInput& in : b.inputs)
    region.inputs.push_back(
        {in.name, in.value, split && in.name == "c_km2" ? b.prefix + "pre0." : ""});
  region.outputs.emplace_back("cell_output", b.output);
  // The cell's nodes in graph order, less those that do not reach its output.
  std::set<int32_t> live_values{b.output.value};
  std::vector<NodeId> nodes;
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    const ir::Node& n = graph.nodes[i];
    if (!starts_with(n.label, b.prefix)) continue;
    const bool live = std::any_of(n.outputs.begin(), n.outputs.end(),
                                  [&](ValueId o) { return live_values.count(o.value) != 0; });
    if (!live) continue;
    nodes.push_back(NodeId{int32_t(i)});
    for (ValueId v : n.inputs)
      if (v.valid()) live_values.insert(v.value);
  }
  std::reverse(nodes.begin(), nodes.end());
  region.nodes = std::move(nodes);
  write_model(graph, params, region, path, options,
              {{"cellgraph.cell", b.prefix.substr(0, b.prefix.size() - 1) +
                                      (b.reduction ? " (reduction)" : " (normal)")}});
}

void export_cell_onnx(const ir::Graph& graph, const ir::ParameterStore& params,
                      const std::string& cell_type, const std::string& path,
                      const ExportOptions& options) {
  require_fixed(graph);
  // A language model has one cell, whatever the spec calls it.
  const int instance = graph.state_in.valid() ? 0 : find_cell_instance(graph, cell_type);
  export_cell_onnx(graph, params, instance, path, options);
}

}  // namespace cellgraph::onnx_export
