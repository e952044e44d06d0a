#include "viz/cell_dot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace cellgraph::viz {

namespace {

// Colours of the DARTS figures: inputs, nodes, output.
constexpr const char* kInputColour = "darkseagreen2";
constexpr const char* kNodeColour = "lightblue";
constexpr const char* kOutputColour = "palegoldenrod";
// Weighted candidate arrows: one hue, opacity by weight.
constexpr const char* kWeightHue = "#1f4e79";

std::string short_number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

// "#1f4e79" + an alpha byte: 0.15 (faint, never invisible) to 1 as `relative` goes 0 to 1.
std::string weighted_colour(double relative) {
  const int alpha = int(std::lround(255.0 * (0.15 + 0.85 * relative)));
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%s%02x", kWeightHue, alpha);
  return buffer;
}

// How many of `weights` are stronger than entry i (ties: the earlier one is stronger).
size_t rank(const std::vector<double>& weights, size_t i) {
  size_t stronger = 0;
  for (size_t j = 0; j < weights.size(); ++j)
    stronger += std::fabs(weights[j]) > std::fabs(weights[i]) ||
                (j < i && std::fabs(weights[j]) == std::fabs(weights[i]));
  return stronger;
}

class Writer {
 public:
  Writer(std::ostringstream& out, std::string prefix, std::string indent)
      : out_(out), prefix_(std::move(prefix)), indent_(std::move(indent)) {}

  std::string id(const std::string& name) const { return dot_quoted(prefix_ + name); }
  std::string output_id() const { return dot_quoted(prefix_ + ":output"); }

  void node(const std::string& id, const std::string& label, const char* colour) {
    out_ << indent_ << id << " [label=" << dot_quoted(label) << ", fillcolor=" << colour << "];\n";
  }

  void arrow(const std::string& from, const std::string& to, const std::string& attributes) {
    out_ << indent_ << from << " -> " << to;
    if (!attributes.empty()) out_ << " [" << attributes << "]";
    out_ << ";\n";
  }

  // Every op of one spec edge: one arrow each.
  void edge(const spec::Edge& edge, const std::string& to, const std::vector<double>* weights,
            const double* path_weight, int top) {
    const std::string from = id(edge.from);
    std::string path = path_weight != nullptr ? " \xc2\xb7 path " + short_number(*path_weight) : "";
    // The edge's scalar coefficient (spec "coefficient"): its value, or its start if trained.
    if (edge.coefficient)
      path += edge.coefficient->trainable
                  ? " \xc3\x97 c (from " + short_number(edge.coefficient->value) + ")"
                  : " \xc3\x97 " + short_number(edge.coefficient->value);
    if (edge.ops.size() == 1 && weights == nullptr) {
      arrow(from, to, "label=" + dot_quoted(edge.ops[0] + path));
      return;
    }
    double strongest = 0;
    if (weights != nullptr)
      for (double w : *weights) strongest = std::max(strongest, std::fabs(w));
    for (size_t i = 0; i < edge.ops.size(); ++i) {
      if (weights != nullptr && top > 0 && rank(*weights, i) >= size_t(top)) continue;
      const std::string& op = edge.ops[i];
      std::string attributes;
      if (weights != nullptr && i < weights->size()) {
        const double w = (*weights)[i];
        const double relative = strongest > 0 ? std::fabs(w) / strongest : 0;
        const std::string colour = weighted_colour(relative);
        attributes = "label=" + dot_quoted((op + " " + short_number(w)).append(path)) +
                     ", penwidth=" + short_number(0.5 + 3.5 * relative) +
                     ", color=" + dot_quoted(colour) + ", fontcolor=" + dot_quoted(colour);
      } else {
        attributes = "label=" + dot_quoted(op + path) + ", color=gray40";
      }
      if (op == "none") attributes += ", style=dashed";
      arrow(from, to, attributes);
    }
  }

 private:
  std::ostringstream& out_;
  std::string prefix_, indent_;
};

void write_cell(std::ostringstream& out, const CellDrawing& drawing, const std::string& prefix,
                const std::string& indent) {
  const spec::Cell& cell = *drawing.cell;
  Writer w(out, prefix, indent);
  // Inputs share the first rank, the output the last: the figure reads left to right.
  out << indent << "{ rank=same;";
  for (const std::string& input : cell.inputs) out << " " << w.id(input) << ";";
  out << " }\n";
  for (const std::string& input : cell.inputs) w.node(w.id(input), input, kInputColour);
  for (const spec::Node& node : cell.nodes) w.node(w.id(node.name), node.name, kNodeColour);
  w.node(w.output_id(), cell.output.concat.size() > 1 ? "output (concat)" : "output",
         kOutputColour);
  for (const spec::Node& node : cell.nodes) {
    const auto ops = drawing.weights.ops.find(node.name);
    const auto paths = drawing.weights.paths.find(node.name);
    for (size_t e = 0; e < node.edges.size(); ++e) {
      const std::vector<double>* weights =
          ops != drawing.weights.ops.end() && e < ops->second.size() && !ops->second[e].empty()
              ? &ops->second[e]
              : nullptr;
      const double* path = paths != drawing.weights.paths.end() && e < paths->second.size()
                               ? &paths->second[e]
                               : nullptr;
      w.edge(node.edges[e], w.id(node.name), weights, path, drawing.top);
    }
  }
  for (const std::string& name : cell.output.concat)
    w.arrow(w.id(name), w.output_id(), "color=gray50");
}

}  // namespace

std::string dot_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string cells_dot(const std::vector<CellDrawing>& cells, const std::string& title) {
  std::ostringstream out;
  out << "digraph " << dot_quoted(title) << " {\n"
      << "  rankdir=LR;\n  fontname=\"Helvetica\";\n"
      << "  node [shape=box, style=\"filled,rounded\", fontname=\"Helvetica\", fontsize=12, "
         "height=0.4];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  if (cells.size() == 1) {
    out << "  label=" << dot_quoted(cells[0].cell->name) << ";\n  labelloc=t;\n";
    write_cell(out, cells[0], "", "  ");
  } else {
    for (const CellDrawing& drawing : cells) {
      const std::string& name = drawing.cell->name;
      out << "  subgraph " << dot_quoted("cluster_" + name) << " {\n"
          << "    label=" << dot_quoted(name) << ";\n    color=gray80;\n";
      write_cell(out, drawing, name + "/", "    ");
      out << "  }\n";
    }
  }
  out << "}\n";
  return out.str();
}

}  // namespace cellgraph::viz
