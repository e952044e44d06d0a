// spec::Space -> format-1 JSON. The output is what `cellgraph search` writes as
// derived.json, so it aims to read like a hand-written spec: defaults left out, short
// objects and lists on one line, nodes in the compact `from` form where that says the same.
#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

#include "spec/detail.h"
#include "spec/json_value.h"
#include "spec/parse.h"

namespace cellgraph::spec {
namespace {

using OJson = nlohmann::ordered_json;  // keeps fields in the order written below

constexpr std::size_t kMaxColumns = 100;

void put_ops(const Edge& edge, OJson& out) {
  if (!edge.op_set.empty()) out["ops"] = edge.op_set;
  // A one-candidate edge with init keeps its list: init on a fixed 'op' edge is refused.
  else if (edge.ops.size() == 1 && edge.init.empty() && edge.init_one_hot.empty())
    out["op"] = edge.ops.front();
  else
    out["ops"] = edge.ops;
}

OJson node_json(const Node& node) {
  OJson out;
  out["name"] = node.name;
  const Edge* first = node.edges.empty() ? nullptr : &node.edges.front();
  const bool compact =
      first && std::all_of(node.edges.begin(), node.edges.end(), [&](const Edge& e) {
        return e.ops == first->ops && e.op_set == first->op_set && e.init.empty() && !e.coefficient;
      });
  if (compact) {
    OJson from = OJson::array();
    for (const Edge& e : node.edges) from.push_back(e.from);
    out["from"] = std::move(from);
    put_ops(*first, out);
  } else {
    OJson edges = OJson::array();
    for (const Edge& e : node.edges) {
      OJson edge;
      edge["from"] = e.from;
      put_ops(e, edge);
      if (!e.init.empty()) {
        OJson init = OJson::object();
        for (const auto& [op, value] : e.init) init[op] = value;
        edge["init"] = std::move(init);
      }
      if (!e.init_one_hot.empty()) edge["init_one_hot"] = e.init_one_hot;
      if (e.coefficient && !e.coefficient->trainable)
        edge["coefficient"] = e.coefficient->value;
      else if (e.coefficient)
        edge["coefficient"] = {{"init", e.coefficient->value}, {"trainable", true}};
      edges.push_back(std::move(edge));
    }
    out["edges"] = std::move(edges);
  }
  if (node.keep > 0) out["keep"] = node.keep;  // 0: not given
  if (node.path_weights) out["path_weights"] = true;
  return out;
}

OJson cell_json(const Cell& cell) {
  OJson out;
  out["name"] = cell.name;
  if (cell.kind == CellForm::recurrent) out["kind"] = "recurrent";
  if (cell.reduction) out["reduction"] = true;
  if (cell.preprocess != "auto") out["preprocess"] = cell.preprocess;
  if (cell.kind == CellForm::recurrent) out["steps"] = cell.nodes.size();
  out["inputs"] = cell.inputs;
  OJson nodes = OJson::array();
  for (const Node& node : cell.nodes) nodes.push_back(node_json(node));
  out["nodes"] = std::move(nodes);
  OJson output;
  if (cell.output.concat.size() == 1)
    output["node"] = cell.output.concat.front();
  else
    output["concat"] = cell.output.concat;
  out["output"] = std::move(output);
  return out;
}

OJson layer_json(const Layer& layer) {
  OJson out;
  out["op"] = layer.op;
  if (layer.op == "conv_3x3" || layer.op == "conv_1x1") {
    out["channels"] = layer.channels;
    if (layer.stride != 1) out["stride"] = layer.stride;
  }
  if (layer.op == "batch_norm" && !layer.affine) out["affine"] = false;
  return out;
}

OJson network_json(const Network& net) {
  OJson out;
  if (net.is_language_model())
    out["input"] = {net.sequence_length};
  else
    out["input"] = {net.in_channels, net.in_height, net.in_width};
  out["classes"] = net.classes;
  if (net.dropout) {
    OJson d;
    d["output"] = net.dropout->output;
    d["hidden"] = net.dropout->hidden;
    d["x"] = net.dropout->x;
    d["input"] = net.dropout->input;
    d["embedding"] = net.dropout->embedding;
    out["dropout"] = std::move(d);
  }
  if (net.edge_bn) out["edge_bn"] = true;
  if (!net.stem.empty()) {
    OJson stem = OJson::array();
    for (const Layer& layer : net.stem) stem.push_back(layer_json(layer));
    out["stem"] = std::move(stem);
  }
  OJson body = OJson::array();
  for (const Stage& stage : net.body) {
    OJson s;
    if (stage.block.empty())
      s["cell"] = stage.cell;
    else
      s["block"] = stage.block;
    s["channels"] = stage.channels;
    if (stage.repeat != 1) s["repeat"] = stage.repeat;
    if (!stage.block.empty() && stage.stride != 1) s["stride"] = stage.stride;
    if (stage.block == "heavy_ball" && stage.momentum != 1) s["momentum"] = stage.momentum;
    if (stage.inner_channels > 0) s["inner_channels"] = stage.inner_channels;
    if (stage.width_search) s["width_search"] = true;
    body.push_back(std::move(s));
  }
  out["body"] = std::move(body);
  OJson head = OJson::array();
  for (const Layer& layer : net.head) head.push_back(layer_json(layer));
  out["head"] = std::move(head);
  return out;
}

std::string scalar_text(const OJson& v) {
  return v.dump(-1, ' ', false, OJson::error_handler_t::replace);
}

std::string inline_text(const OJson& v) {
  if (!v.is_structured()) return scalar_text(v);
  std::string out(1, v.is_object() ? '{' : '[');
  bool first = true;
  for (const auto& item : v.items()) {
    if (!first) out += ", ";
    first = false;
    if (v.is_object()) out += scalar_text(OJson(item.key())) + ": ";
    out += inline_text(item.value());
  }
  return out + (v.is_object() ? '}' : ']');
}

int depth(const OJson& v) {
  int deepest = 0;
  if (v.is_structured())
    for (const auto& item : v) deepest = std::max(deepest, depth(item));
  return v.is_structured() ? deepest + 1 : 0;
}

// A container goes on one line when it is shallow (a node, a stage, a list of names) and
// fits; a long list of names fills lines; anything else has one member per line.
void print(const OJson& v, std::size_t indent, std::size_t column, std::string& out) {
  const std::string flat = inline_text(v);
  if (!v.is_structured() || v.empty() ||
      (depth(v) <= 2 && column + flat.size() + 1 <= kMaxColumns)) {
    out += flat;
    return;
  }
  const std::string pad(indent + 2, ' ');
  if (depth(v) == 1 && v.is_array()) {
    out.append("[\n").append(pad);
    std::size_t line = pad.size();
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::string item = scalar_text(v[i]) + (i + 1 < v.size() ? "," : "");
      if (i > 0 && line + 1 + item.size() > kMaxColumns) {
        out.append("\n").append(pad);
        line = pad.size();
      } else if (i > 0) {
        out += ' ';
        ++line;
      }
      out += item;
      line += item.size();
    }
    out.append("\n").append(indent, ' ').push_back(']');
    return;
  }
  out += v.is_object() ? "{\n" : "[\n";
  std::size_t i = 0;
  for (const auto& item : v.items()) {
    const std::string key = v.is_object() ? scalar_text(OJson(item.key())) + ": " : "";
    out += pad + key;
    print(item.value(), indent + 2, indent + 2 + key.size(), out);
    out += ++i < v.size() ? ",\n" : "\n";
  }
  out.append(indent, ' ').push_back(v.is_object() ? '}' : ']');
}

}  // namespace

std::string to_json(const Space& space) {
  OJson root;
  root["format"] = 1;
  root["name"] = space.name;
  if (!space.description.empty()) root["description"] = space.description;
  if (space.metadata.is_object()) root["metadata"] = OJson::parse(dump(space.metadata));
  if (!space.op_sets.empty()) {
    OJson sets = OJson::object();
    for (const auto& [name, ops] : space.op_sets) sets[name] = ops;
    root["op_sets"] = std::move(sets);
  }
  OJson cells = OJson::array();
  for (const Cell& cell : space.cells) cells.push_back(cell_json(cell));
  root["cells"] = std::move(cells);
  root["network"] = network_json(space.network);
  OJson arch;
  arch["init_std"] = space.arch.init_std;
  arch["share"] = space.arch.share_by_cell ? "cell_type" : "none";
  root["arch"] = std::move(arch);
  std::string out;
  print(root, 0, 0, out);
  return out + "\n";
}

}  // namespace cellgraph::spec
