// cellgraph info SPEC [--json]: what a spec compiles to (shapes, counts, MACs), and for a
// fixed network its skip-connection ratio and, for a NATS-Bench cell, its NATS-Bench entry.
#include <cmath>
#include <iostream>
#include <map>
#include <sstream>

#include "algorithms/cell_facts.h"
#include "ops/candidates.h"
#include "spec/compile.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tools/cellgraph/cell_report.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/run_dir.h"

namespace cellgraph::tools {

namespace {

using spec::JsonValue;

JsonValue shape_json(const Shape& s) {
  JsonValue out = JsonValue::array();
  for (int i = 1; i < s.rank(); ++i) out.push_back(s[i]);  // per sample: drop the batch
  return out;
}

// The op type a weight belongs to: its candidate's op, else the op named after an edge
// component ("cells.3.n1.e0.sep_conv_3x3.dw1.weight" in a fixed network), else "other".
std::string op_type_of(const ir::Graph& graph, const ir::Parameter& p) {
  // A recurrent cell's matrices (W0, one per node) are shared by every op of its edges.
  if (graph.state_in.valid() && p.name.rfind("cells.", 0) == 0) return "recurrent cell";
  if (p.candidate.valid()) {
    for (const CandidateInfo& info : candidate_ops())
      if (info.id == graph.candidate(p.candidate).op) return std::string(info.name);
  }
  std::istringstream parts(p.name);
  std::string part;
  bool after_edge = false;
  while (std::getline(parts, part, '.')) {
    if (after_edge)
      for (const CandidateInfo& info : candidate_ops())
        if (info.name == part) return part;
    after_edge = part.size() > 1 && part[0] == 'e' &&
                 part.find_first_not_of("0123456789", 1) == std::string::npos;
  }
  return "other";
}

JsonValue describe(const std::string& path, const spec::Space& space, const ir::Graph& graph) {
  JsonValue out = JsonValue::object();
  out.set("spec", path);
  out.set("name", space.name);
  const spec::Network& net = space.network;
  JsonValue input = JsonValue::array();
  if (net.is_language_model())
    input.push_back(net.sequence_length);  // tokens per sample
  else
    for (int64_t d : {net.in_channels, net.in_height, net.in_width}) input.push_back(d);
  out.set("input", input);
  out.set("language_model", net.is_language_model());
  out.set("classes", net.classes);
  JsonValue cells = JsonValue::array();
  for (const spec::Cell& c : space.cells) {
    size_t edges = 0, candidates = 0;
    for (const spec::Node& n : c.nodes)
      for (const spec::Edge& e : n.edges) {
        ++edges;
        if (e.ops.size() > 1) candidates += e.ops.size();
      }
    JsonValue cell = JsonValue::object();
    cell.set("name", c.name);
    cell.set("reduction", c.reduction);
    cell.set("kind", c.kind == spec::CellKind::recurrent ? "recurrent" : "convolutional");
    cell.set("nodes", c.nodes.size());
    cell.set("edges", edges);
    cell.set("candidates", candidates);
    cells.push_back(cell);
  }
  out.set("cell_types", cells);
  // Instances in order: the last node built under "cells.N." is the cell's output (or a
  // node of it); its shape gives the spatial size.
  JsonValue instances = JsonValue::array();
  int index = 0;
  for (const spec::Stage& stage : net.body)
    for (int r = 0; r < stage.repeat; ++r, ++index) {
      const std::string prefix = "cells." + std::to_string(index) + ".";
      Shape shape;
      for (const ir::Node& n : graph.nodes)
        if (n.label.rfind(prefix, 0) == 0) shape = graph.value(n.outputs[0]).shape;
      // A language model's cell is unrolled ("t3/cells.0..."): its output is h_t.
      if (graph.state_out.valid()) shape = graph.value(graph.state_out).shape;
      JsonValue inst = JsonValue::object();
      inst.set("index", index);
      inst.set(stage.cell.empty() ? "block" : "cell",
               stage.cell.empty() ? stage.block : stage.cell);
      inst.set("channels", stage.channels);
      inst.set("output", shape_json(shape));
      instances.push_back(inst);
    }
  out.set("cells", instances);
  out.set("candidates", graph.candidates.size());
  out.set("weights", graph.weight_count());
  int64_t arch_params = 0;
  JsonValue groups = JsonValue::array();
  for (const ir::ArchGroup& g : graph.arch_groups) {
    arch_params += int64_t(g.rows) * int64_t(g.columns.size());
    JsonValue group = JsonValue::object();
    group.set("name", g.name);
    group.set("rows", g.rows);
    group.set("columns", g.columns.size());
    // Rows that start one-hot: the logit they start at and the softmax weight it gives.
    JsonValue one_hot = JsonValue::array();
    for (int32_t r = 0; r < g.rows; ++r) {
      const int32_t hot = g.one_hot[size_t(r)];
      if (hot < 0) continue;
      const double logit = g.init[size_t(r)][size_t(hot)];
      JsonValue row = JsonValue::object();
      row.set("row", g.row_labels[size_t(r)]);
      row.set("op", g.columns[size_t(hot)]);
      row.set("logit", logit);
      row.set("softmax_weight", std::exp(logit) / (std::exp(logit) + double(g.columns.size() - 1)));
      one_hot.push_back(row);
    }
    if (!one_hot.items().empty()) group.set("one_hot", one_hot);
    groups.push_back(group);
  }
  out.set("arch_parameters", arch_params);
  out.set("arch_groups", groups);
  out.set("macs", graph.macs());
  out.set("activation_bytes", graph.activation_bytes_per_sample());
  std::map<std::string, int64_t> by_op;
  for (const ir::Parameter& p : graph.params)
    if (!p.is_buffer) by_op[op_type_of(graph, p)] += p.shape.numel();
  JsonValue weights_by_op = JsonValue::object();
  for (const CandidateInfo& info : candidate_ops())  // registry order, then "other"
    if (by_op.count(std::string(info.name)))
      weights_by_op.set(std::string(info.name), by_op[std::string(info.name)]);
  if (by_op.count("recurrent cell")) weights_by_op.set("recurrent cell", by_op["recurrent cell"]);
  if (by_op.count("other")) weights_by_op.set("other", by_op["other"]);
  out.set("weights_by_op", weights_by_op);
  // What is known about the cells themselves.
  if (space.is_fixed()) algorithms::add_cell_facts(space, out);
  return out;
}

std::string grouped(int64_t n) {  // 1930618 -> "1,930,618"
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

std::string shape_str(const JsonValue& dims) {
  std::string out = "[";
  for (const JsonValue& d : dims.items())
    out += (out.size() > 1 ? ", " : "") + std::to_string(d.as_integer());
  return out + "]";
}

void print_text(const JsonValue& d) {
  std::ostream& o = std::cout;
  o << d.find("spec")->as_string() << ": " << d.find("name")->as_string() << "\n";
  const bool language_model = d.find("language_model")->as_bool();
  o << "input " << shape_str(*d.find("input")) << (language_model ? " tokens, vocabulary " : ", ")
    << d.find("classes")->as_integer()
    << (language_model ? " (embedding tied to the decoder)" : " classes") << "\n\ncell types:\n";
  for (const JsonValue& c : d.find("cell_types")->items()) {
    char line[200];
    std::snprintf(line, sizeof line, "  %-12s %-10s %3lld nodes %4lld edges %6lld candidates\n",
                  c.find("name")->as_string().c_str(),
                  c.find("kind")->as_string() == "recurrent" ? "recurrent"
                  : c.find("reduction")->as_bool()           ? "reduction"
                                                             : "normal",
                  (long long)c.find("nodes")->as_integer(),
                  (long long)c.find("edges")->as_integer(),
                  (long long)c.find("candidates")->as_integer());
    o << line;
  }
  o << "\ncells in order:\n";
  for (const JsonValue& c : d.find("cells")->items()) {
    const JsonValue* cell = c.find("cell");
    const std::string what = cell ? cell->as_string() : "block " + c.find("block")->as_string();
    char line[200];
    std::snprintf(line, sizeof line, "  %3lld  %-14s C=%-5lld out %s\n",
                  (long long)c.find("index")->as_integer(), what.c_str(),
                  (long long)c.find("channels")->as_integer(),
                  shape_str(*c.find("output")).c_str());
    o << line;
  }
  o << "\ncandidate ops:            " << grouped(d.find("candidates")->as_integer()) << "\n"
    << "weights:                  " << grouped(d.find("weights")->as_integer()) << "\n"
    << "architecture parameters:  " << grouped(d.find("arch_parameters")->as_integer());
  std::string groups;
  for (const JsonValue& g : d.find("arch_groups")->items())
    groups += (groups.empty() ? "" : ", ") + g.find("name")->as_string() + " " +
              std::to_string(g.find("rows")->as_integer()) + "x" +
              std::to_string(g.find("columns")->as_integer());
  if (!groups.empty()) o << " (" << groups << ")";
  for (const JsonValue& g : d.find("arch_groups")->items()) {
    const JsonValue* rows = g.find("one_hot");
    if (rows == nullptr) continue;
    o << "\none-hot starts in " << g.find("name")->as_string() << " (the row's other logits 0):";
    for (const JsonValue& r : rows->items()) {
      char line[240];
      std::snprintf(line, sizeof line, "\n  %-24s %-14s logit %.3f -> softmax weight %.3f",
                    r.find("row")->as_string().c_str(), r.find("op")->as_string().c_str(),
                    r.find("logit")->as_double(), r.find("softmax_weight")->as_double());
      o << line;
    }
  }
  o << "\nMACs per sample:          " << grouped(d.find("macs")->as_integer()) << "\n"
    << "activations per sample:   "
    << grouped((d.find("activation_bytes")->as_integer() + 1023) / 1024) << " KiB\n"
    << "\nweights per op type:\n";
  for (const auto& [op, n] : d.find("weights_by_op")->members()) {
    char line[200];
    std::snprintf(line, sizeof line, "  %-34s %12s\n",
                  op != "other"    ? op.c_str()
                  : language_model ? "other (embedding, decoder bias)"
                                   : "other (stem, preprocessing, head)",
                  grouped(n.as_integer()).c_str());
    o << line;
  }
}

int run_info(const Args& args) {
  const std::string& path = args.positional(0);
  const spec::Space space = spec::parse_file(path);
  const ir::Graph graph = spec::compile(space);
  const JsonValue d = describe(path, space, graph);
  if (args.has("json"))
    std::cout << spec::dump(d, 2) << "\n";
  else
    print_text(d);
  if (!args.has("json") && space.is_fixed())
    if (const std::string facts = cell_facts_text(space); !facts.empty())
      std::cout << "\n" << facts;
  return 0;
}

}  // namespace

const Command& info_command() {
  static const Command kCommand{
      .name = "info",
      .summary = "show what a spec compiles to: shapes, cells, weights, MACs",
      .positionals = {"SPEC"},
      .flags = {{"json", "", "print one JSON object instead of text", ""}},
      .details =
          "Counts are per network; MACs are for one sample with every candidate active. "
          "A fixed network also gets its skip-connection ratio, and a NATS-Bench "
          "topology cell its NATS-Bench index and test accuracies.",
      .run = run_info};
  return kCommand;
}

}  // namespace cellgraph::tools
