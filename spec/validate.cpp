// Semantic checks of a read spec::Space: names and references inside each cell, the cell
// graph, and a static walk of the network that follows channels and spatial sizes. The
// reader (json_reader.cpp) has already checked every type, field and range.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spec/detail.h"

namespace cellgraph::spec::detail {
namespace {

using Names = std::vector<std::string>;

bool contains(const Names& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// A tensor flowing through the network, and who produced it (for the messages).
struct Shape {
  int64_t channels = 0, height = 0, width = 0;
  std::string source;
};

std::string size_text(const Shape& s) {
  return std::to_string(s.height) + "x" + std::to_string(s.width);
}

class Validator {
 public:
  explicit Validator(const Space& space) : space_(space) {}

  void run() const {
    for (std::size_t i = 0; i < space_.cells.size(); ++i) {
      const Cell& cell = space_.cells[i];
      for (std::size_t j = 0; j < i; ++j)
        if (space_.cells[j].name == cell.name)
          fail(child(cell.pointer, "name"), "duplicate cell name " + in_quotes(cell.name) +
                                                "; cell names must be unique (first defined at " +
                                                space_.cells[j].pointer + ")");
      check_names(cell);
      check_edges(cell);
      check_output(cell);
      if (cell.kind == CellForm::recurrent && cell.inputs.size() != 1)
        fail(child(cell.pointer, "inputs"),
             "a recurrent cell has one input, its initial state s0 (computed from x_t and "
             "h_{t-1}); got " +
                 std::to_string(cell.inputs.size()));
    }
    if (space_.network.is_language_model())
      check_language_model();
    else
      check_network();
  }

 private:
  [[noreturn]] void fail(const std::string& ptr, const std::string& what) const {
    detail::fail(space_.file, ptr, what);
  }

  static int node_index(const Cell& cell, const std::string& name) {
    for (std::size_t i = 0; i < cell.nodes.size(); ++i)
      if (cell.nodes[i].name == name) return static_cast<int>(i);
    return -1;
  }

  void check_names(const Cell& cell) const {
    if (cell.inputs.size() == 2 && cell.inputs[0] == cell.inputs[1])
      fail(child(child(cell.pointer, "inputs"), 1),
           "duplicate input name " + in_quotes(cell.inputs[1]) + "; expected two different names");
    for (std::size_t k = 0; k < cell.nodes.size(); ++k) {
      const Node& node = cell.nodes[k];
      const std::string ptr = child(node.pointer, "name");
      if (contains(cell.inputs, node.name))
        fail(ptr, "node " + in_quotes(node.name) +
                      " has the name of a cell input; expected a name "
                      "different from the inputs (" +
                      join(cell.inputs) + ")");
      for (std::size_t m = 0; m < k; ++m)
        if (cell.nodes[m].name == node.name)
          fail(ptr, "duplicate node name " + in_quotes(node.name) +
                        "; node names must be unique in a cell (first defined at " +
                        cell.nodes[m].pointer + ")");
    }
  }

  void check_edges(const Cell& cell) const {
    for (std::size_t k = 0; k < cell.nodes.size(); ++k) {
      const Node& node = cell.nodes[k];
      const std::string rule = "; a node may only take earlier nodes and the cell inputs";
      for (const Edge& edge : node.edges) {
        if (contains(cell.inputs, edge.from)) continue;
        const int from = node_index(cell, edge.from);
        if (from == static_cast<int>(k))
          fail(edge.from_pointer,
               "edge from " + in_quotes(edge.from) + " to itself makes a cycle" + rule);
        if (from > static_cast<int>(k))
          fail(edge.from_pointer, "edge from " + in_quotes(edge.from) + ", which comes after " +
                                      in_quotes(node.name) + rule);
        if (from < 0) {
          Names sources = cell.inputs;
          for (std::size_t m = 0; m < k; ++m) sources.push_back(cell.nodes[m].name);
          fail(edge.from_pointer,
               "unknown node or input " + in_quotes(edge.from) + unknown_hint(edge.from, sources));
        }
      }
    }
  }

  void check_output(const Cell& cell) const {
    const CellOutput& out = cell.output;
    Names node_names;
    for (const Node& node : cell.nodes) node_names.push_back(node.name);
    std::vector<bool> used(cell.nodes.size(), false);
    for (std::size_t i = 0; i < out.concat.size(); ++i) {
      const std::string& name = out.concat[i];
      const std::string& ptr = out.pointers[i];
      if (contains(cell.inputs, name))
        fail(ptr, in_quotes(name) + " is a cell input, not a node" +
                      unknown_hint(name, node_names, "; expected a node of the cell"));
      const int index = node_index(cell, name);
      if (index < 0) fail(ptr, "unknown node " + in_quotes(name) + unknown_hint(name, node_names));
      if (used[static_cast<std::size_t>(index)])
        fail(ptr,
             "duplicate node " + in_quotes(name) + " in the output; each node may appear once");
      used[static_cast<std::size_t>(index)] = true;
    }
    // A node feeds the output directly or through a later node that does; walk backwards.
    for (std::size_t k = cell.nodes.size(); k-- > 0;) {
      if (!used[k]) continue;
      for (const Edge& edge : cell.nodes[k].edges)
        if (const int from = node_index(cell, edge.from); from >= 0)
          used[static_cast<std::size_t>(from)] = true;
    }
    for (std::size_t k = 0; k < cell.nodes.size(); ++k)
      if (!used[k])
        fail(cell.nodes[k].pointer, "node " + in_quotes(cell.nodes[k].name) +
                                        " does not reach the cell output; expected it in the "
                                        "output or as an input of a later node that reaches it");
  }

  // Stride 2 with ceil: the size never reaches 0, but halving a 1-pixel side is where the
  // size "drops below 1" (and factorized reduce would produce an empty tensor).
  void halve(Shape& s, const std::string& ptr, const std::string& what) const {
    if (s.height < 2 || s.width < 2)
      fail(ptr, "spatial size drops below 1: " + what + " would halve a " + size_text(s) +
                    " feature map; expected a larger input or fewer stride-2 steps");
    s.height = (s.height + 1) / 2;
    s.width = (s.width + 1) / 2;
  }

  // Candidates whose output has C channels whatever the input has: those that start with a
  // full convolution to C (and at stride 2 the factorized reduces).
  static bool maps_channels(const std::string& op, bool stride_2) {
    static const Names kConvolutions = {"conv_1x1",     "conv_3x3",         "nor_conv_1x1",
                                        "nor_conv_3x3", "conv_bn_relu_3x3", "factorized_reduce"};
    return contains(kConvolutions, op) ||
           (stride_2 && (op == "skip_connect" || op == "neg_identity"));
  }

  // With preprocess none an input may have other channels than C only when every edge
  // leaving it maps channels (e.g. an AGDNet stage whose first convolution doubles them).
  static bool edges_map_channels(const Cell& cell, const std::string& input) {
    for (const Node& node : cell.nodes)
      for (const Edge& edge : node.edges)
        if (edge.from == input)
          for (const std::string& op : edge.ops)
            if (!maps_channels(op, cell.reduction)) return false;
    return true;
  }

  void check_cell_inputs(const Cell& cell, const Stage& stage, const std::string& which,
                         const Shape& older, const Shape& last) const {
    if (cell.preprocess != "none") return;
    const std::string who = "cell " + in_quotes(cell.name) + which;
    const std::vector<const Shape*> inputs =
        cell.inputs.size() == 2 ? std::vector{&older, &last} : std::vector{&last};
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i]->channels != stage.channels && !edges_map_channels(cell, cell.inputs[i]))
        fail(stage.pointer, who + " expects " + std::to_string(stage.channels) +
                                " input channels (preprocess none) but receives " +
                                std::to_string(inputs[i]->channels) + " from " + inputs[i]->source +
                                "; expected equal channels, edges from input " +
                                in_quotes(cell.inputs[i]) +
                                " that all start with a convolution to C, or \"preprocess\": "
                                "\"auto\"");
    if (cell.inputs.size() == 2 && (older.height != last.height || older.width != last.width))
      fail(stage.pointer, who + " (preprocess none) receives inputs of different sizes, " +
                              size_text(older) + " and " + size_text(last) +
                              "; expected equal sizes, or \"preprocess\": \"auto\"");
  }

  // The ResNet paper's shortcut (option A, basic and heavy_ball blocks) pads channels with
  // zeros: it cannot drop any.
  void check_block_channels(const Stage& stage, const Shape& in) const {
    if (stage.block == "residual" || in.channels <= stage.channels) return;
    fail(stage.pointer, "a " + stage.block + " block of " + std::to_string(stage.channels) +
                            " channels receives " + std::to_string(in.channels) + " from " +
                            in.source +
                            "; its identity shortcut pads channels with zeros and cannot drop "
                            "any: expected at least as many channels as its input");
  }

  // "input": [T]: embedding, one recurrent cell unrolled over T steps, a tied decoder.
  void check_language_model() const {
    const Network& net = space_.network;
    const std::string form =
        "; a recurrent language model (\"input\": [T]) is an embedding, one recurrent cell "
        "and a linear decoder tied to the embedding";
    if (!net.stem.empty()) fail(child(net.pointer, "stem"), "expected no stem" + form);
    if (net.body.size() != 1)
      fail(child(net.pointer, "body"),
           "expected one stage, got " + std::to_string(net.body.size()) + form);
    const Stage& stage = net.body[0];
    const Cell* cell = stage.cell.empty() ? nullptr : space_.find_cell(stage.cell);
    if (cell == nullptr || cell->kind != CellForm::recurrent)
      fail(stage.pointer, (stage.cell.empty() ? "a " + stage.block + " block"
                           : cell == nullptr  ? "unknown cell " + in_quotes(stage.cell)
                                              : "convolutional cell " + in_quotes(stage.cell)) +
                              "; expected a recurrent cell" + form);
    if (stage.repeat != 1)
      fail(child(stage.pointer, "repeat"),
           "expected repeat 1 (one recurrent cell, stacked over time rather than depth)" + form);
    if (net.head.size() != 1 || net.head[0].op != "linear")
      fail(child(net.pointer, "head"), "expected exactly [{\"op\": \"linear\"}]" + form);
    if (net.edge_bn)
      fail(child(net.pointer, "edge_bn"), "edge_bn applies to image networks" + form);
  }

  void check_network() const {
    const Network& net = space_.network;
    for (const Stage& stage : net.body) {
      const Cell* cell = stage.cell.empty() ? nullptr : space_.find_cell(stage.cell);
      if (cell != nullptr && cell->kind == CellForm::recurrent)
        fail(stage.pointer, "recurrent cell " + in_quotes(cell->name) +
                                " in an image network; a recurrent cell runs in a language "
                                "model: expected \"input\": [T] (tokens per sample) at " +
                                child(net.pointer, "input"));
    }
    Shape last{net.in_channels, net.in_height, net.in_width, "the network input"};
    for (const Layer& layer : net.stem) {
      if (layer.channels == 0) continue;  // batch_norm, relu
      if (layer.stride == 2) halve(last, layer.pointer, "stem layer " + in_quotes(layer.op));
      last.channels = layer.channels;
      last.source = "the stem";
    }
    Shape older = last;  // c_k-2; the stem output is both inputs of the first cell
    // x_{k-1} of a heavy_ball block: the previous block's input when that block was one too.
    std::optional<Shape> momentum_source;
    for (const Stage& stage : net.body) {
      if (!stage.block.empty()) {
        for (int r = 0; r < stage.repeat; ++r) {
          const Shape in = last;
          check_block_channels(stage, in);
          if (stage.block == "heavy_ball" && momentum_source)
            check_block_channels(stage, *momentum_source);
          // Like a ResNet stage, only the first of `repeat` blocks strides.
          if (r == 0 && stage.stride == 2)
            halve(last, stage.pointer, "block " + in_quotes(stage.block));
          last.channels = stage.channels;
          last.source = "the " + stage.block + " block at " + stage.pointer;
          momentum_source.reset();
          if (stage.block == "heavy_ball") momentum_source = in;
        }
        older = last;  // a block's output is both inputs of the next cell
        continue;
      }
      momentum_source.reset();
      const Cell* cell = space_.find_cell(stage.cell);
      if (!cell) {
        Names names;
        for (const Cell& c : space_.cells) names.push_back(c.name);
        fail(child(stage.pointer, "cell"),
             "unknown cell " + in_quotes(stage.cell) +
                 unknown_hint(stage.cell, names, "; no cells are defined (top-level 'cells')"));
      }
      for (int r = 0; r < stage.repeat; ++r) {
        const std::string which = stage.repeat == 1 ? ""
                                                    : " (repeat " + std::to_string(r + 1) + " of " +
                                                          std::to_string(stage.repeat) + ")";
        check_cell_inputs(*cell, stage, which, older, last);
        Shape out = last;
        if (cell->reduction)
          halve(out, stage.pointer, "reduction cell " + in_quotes(cell->name) + which);
        // A recurrent cell averages its output nodes (DARTS RNN), so its output has C.
        const auto outputs = static_cast<int64_t>(cell->output.concat.size());
        const bool averaged = cell->kind == CellForm::recurrent;
        out.channels = averaged ? stage.channels : stage.channels * outputs;
        out.source =
            "cell " + in_quotes(cell->name) +
            (averaged || outputs == 1 ? ""
                                      : " (" + std::to_string(outputs) + " concatenated nodes of " +
                                            std::to_string(stage.channels) + ")");
        older = last;
        last = out;
      }
    }
    bool pooled = false;
    for (const Layer& layer : net.head) {
      if (layer.op == "conv_3x3" || layer.op == "conv_1x1") {
        if (pooled)
          fail(layer.pointer, in_quotes(layer.op) +
                                  " after global_avg_pool; expected convolutions "
                                  "before the pooling");
        if (layer.stride == 2) halve(last, layer.pointer, "head layer " + in_quotes(layer.op));
      } else if (layer.op == "global_avg_pool") {
        if (pooled) fail(layer.pointer, "a second global_avg_pool; expected one");
        pooled = true;
      }
    }
  }

  const Space& space_;
};

}  // namespace

void validate_space(const Space& space) { Validator(space).run(); }

}  // namespace cellgraph::spec::detail
