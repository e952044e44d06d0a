// JSON text -> spec::Space. This pass owns everything that needs the JSON itself: syntax,
// types, required and unknown fields, ranges, name syntax and candidate-op lookup. The
// cross-references (graph, network walk) are checked on the Space in validate.cpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "spec/detail.h"
#include "spec/json_value.h"

namespace cellgraph::spec::detail {

using Json = nlohmann::json;
// syntax.cpp: the text as a JSON document, or an Error with line and column. Declared here
// rather than in detail.h because no header may carry nlohmann types.
Json parse_json(const std::string& text, const std::string& file);

namespace {

using Names = std::vector<std::string>;

// The value as a user would recognise it in "got ...", never the whole of a big value.
std::string describe(const Json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  std::string text = v.dump(-1, ' ', true, Json::error_handler_t::replace);
  if (text.size() > 50) text = text.substr(0, 46) + "...\"";
  return text;
}

// The conversion proper; member functions read one kind of object each.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}
  Space read(const Json& root) const;

 private:
  [[noreturn]] void fail(const std::string& ptr, const std::string& what) const {
    detail::fail(file_, ptr, what);
  }
  static const Json* find(const Json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  }
  // Run before the other checks of an object so that a misspelt required field reads as a
  // typo ("did you mean 'name'?") rather than as a missing field. The pointer is the
  // object's, like that of a missing field: the message names the field.
  void check_fields(const Json& v, const std::string& ptr, const Names& allowed,
                    const std::string& context = "") const {
    for (const auto& item : v.items())
      if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end())
        fail(ptr, "unknown field " + in_quotes(item.key()) + context +
                      unknown_hint(item.key(), allowed));
  }
  const Json& require(const Json& object, const std::string& ptr, const char* key,
                      const std::string& why = "") const {
    if (const Json* v = find(object, key)) return *v;
    fail(ptr, "missing required field '" + std::string(key) + "'" + why);
  }
  const Json& object(const Json& v, const std::string& ptr) const {
    if (!v.is_object()) fail(ptr, "expected an object, got " + describe(v));
    return v;
  }
  // `if_empty` is the complaint about an empty array, or "" when empty is fine.
  const Json& array(const Json& v, const std::string& ptr, const std::string& of_what,
                    const std::string& if_empty) const {
    if (!v.is_array()) fail(ptr, "expected an array of " + of_what + ", got " + describe(v));
    if (v.empty() && !if_empty.empty()) fail(ptr, if_empty);
    return v;
  }
  std::string string(const Json& v, const std::string& ptr) const {
    if (!v.is_string()) fail(ptr, "expected a string, got " + describe(v));
    return v.get<std::string>();
  }
  std::string name(const Json& v, const std::string& ptr) const {
    std::string s = string(v, ptr);
    if (!is_identifier(s))
      fail(ptr, (s.empty() ? std::string("empty name") : "invalid name " + in_quotes(s)) +
                    "; expected letters, digits, '_' and '-', starting with a letter");
    return s;
  }
  std::string choice(const Json& v, const std::string& ptr, const Names& options,
                     const std::string& what) const {
    std::string s = string(v, ptr);
    if (std::find(options.begin(), options.end(), s) == options.end())
      fail(ptr, "unknown " + what + " " + in_quotes(s) + unknown_hint(s, options));
    return s;
  }
  bool boolean(const Json& v, const std::string& ptr) const {
    if (!v.is_boolean()) fail(ptr, "expected true or false, got " + describe(v));
    return v.get<bool>();
  }
  int64_t integer(const Json& v, const std::string& ptr, int64_t lo, int64_t hi) const {
    // Floats are refused even when whole (16.0): people and to_json write counts as
    // integers, so a float is more likely a slip than a count.
    if (v.is_number_unsigned()) {
      const auto u = v.get<uint64_t>();
      if (u <= static_cast<uint64_t>(hi) && static_cast<int64_t>(u) >= lo)
        return static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      const auto i = v.get<int64_t>();
      if (lo <= i && i <= hi) return i;
    }
    fail(ptr, "expected an integer between " + std::to_string(lo) + " and " + std::to_string(hi) +
                  ", got " + describe(v));
  }
  int stride(const Json& v, const std::string& ptr) const {
    if (!v.is_number_integer() || (v.get<int64_t>() != 1 && v.get<int64_t>() != 2))
      fail(ptr, "expected a stride of 1 or 2, got " + describe(v));
    return static_cast<int>(v.get<int64_t>());
  }
  double number(const Json& v, const std::string& ptr) const {
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      fail(ptr, "expected a finite number, got " + describe(v));
    return v.get<double>();
  }

  void read_op_sets(const Json& v, Space& space) const;
  Cell read_cell(const Json& v, const std::string& ptr, const Space& space) const;
  Node read_node(const Json& v, const std::string& ptr, const Cell& cell, const Space& space) const;
  Edge read_edge(const Json& v, const std::string& ptr, const Cell& cell, const Space& space) const;
  EdgeCoefficient read_coefficient(const Json& v, const std::string& ptr) const;
  void read_output(const Json& v, const std::string& ptr, Cell& cell) const;
  void read_ops(const Json& holder, const std::string& ptr, const Cell& cell, const Space& space,
                Edge& edge) const;
  std::string op_name(const Json& v, const std::string& ptr, const Cell& cell) const;
  Network read_network(const Json& v, const std::string& ptr) const;
  RecurrentDropout read_dropout(const Json& v, const std::string& ptr) const;
  Layer read_layer(const Json& v, const std::string& ptr, bool in_stem) const;
  Stage read_stage(const Json& v, const std::string& ptr) const;
  ArchOptions read_arch(const Json& v, const std::string& ptr) const;

  std::string file_;
};

std::string form_name(CellForm form) {
  return form == CellForm::recurrent ? "recurrent" : "convolutional";
}

Space Reader::read(const Json& root) const {
  if (!root.is_object()) fail("", "expected the top level to be an object, got " + describe(root));
  // The format goes first: a spec of another format may well have other fields.
  const Json& format = require(root, "", "format");
  if (!format.is_number_integer())
    fail("/format", "expected the integer 1, got " + describe(format));
  if (!format.is_number_unsigned() || format.get<uint64_t>() != 1)
    fail("/format", "unsupported format " + describe(format) + "; this cellgraph reads format 1");
  check_fields(
      root, "",
      {"format", "name", "description", "metadata", "op_sets", "cells", "network", "arch"});
  const Json& cells = require(root, "", "cells");
  const Json& network = require(root, "", "network");
  Space space;
  space.file = file_;
  space.name = string(require(root, "", "name"), "/name");
  if (space.name.empty()) fail("/name", "empty name; expected the space's name");
  if (const Json* d = find(root, "description")) space.description = string(*d, "/description");
  if (const Json* m = find(root, "metadata"))  // its content is read in read_space
    if (!m->is_object())
      fail("/metadata",
           "expected an object (free-form facts about the space), got " + describe(*m));
  if (const Json* sets = find(root, "op_sets")) read_op_sets(*sets, space);
  array(cells, "/cells", "cells", "");
  for (std::size_t i = 0; i < cells.size(); ++i)
    space.cells.push_back(read_cell(cells[i], child("/cells", i), space));
  space.network = read_network(network, "/network");
  if (const Json* arch = find(root, "arch")) space.arch = read_arch(*arch, "/arch");
  return space;
}

void Reader::read_op_sets(const Json& v, Space& space) const {
  object(v, "/op_sets");
  Names all_ops = op_names(CellForm::convolutional);
  for (const std::string& op : op_names(CellForm::recurrent))
    if (std::find(all_ops.begin(), all_ops.end(), op) == all_ops.end()) all_ops.push_back(op);
  for (const auto& item : v.items()) {
    const std::string ptr = child("/op_sets", item.key());
    if (!is_identifier(item.key()))
      fail(ptr, "invalid op set name " + in_quotes(item.key()) +
                    "; expected letters, digits, '_' and '-', starting with a letter");
    const Json& list = array(item.value(), ptr, "candidate op names",
                             "empty op set; expected at least one candidate op");
    Names ops;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string op = string(list[i], child(ptr, i));
      if (!find_candidate(op, CellForm::convolutional) && !find_candidate(op, CellForm::recurrent))
        fail(child(ptr, i), "unknown op " + in_quotes(op) + unknown_hint(op, all_ops));
      if (std::find(ops.begin(), ops.end(), op) != ops.end())
        fail(child(ptr, i), "duplicate op " + in_quotes(op) + "; each op may appear once in a set");
      ops.push_back(op);
    }
    space.op_sets[item.key()] = std::move(ops);
  }
}

Cell Reader::read_cell(const Json& v, const std::string& ptr, const Space& space) const {
  object(v, ptr);
  check_fields(v, ptr,
               {"name", "kind", "inputs", "nodes", "output", "reduction", "preprocess", "steps"});
  Cell cell;
  cell.pointer = ptr;
  cell.name = name(require(v, ptr, "name"), child(ptr, "name"));
  const Json& inputs = require(v, ptr, "inputs");
  const Json& nodes = require(v, ptr, "nodes");
  const Json& output = require(v, ptr, "output");
  if (const Json* kind = find(v, "kind"))
    if (choice(*kind, child(ptr, "kind"), {"convolutional", "recurrent"}, "cell kind") ==
        "recurrent")
      cell.kind = CellForm::recurrent;
  const std::string inputs_ptr = child(ptr, "inputs");
  array(inputs, inputs_ptr, "input names", "");
  if (inputs.empty() || inputs.size() > 2)
    fail(inputs_ptr, "a cell takes 1 or 2 inputs, got " + std::to_string(inputs.size()) +
                         "; expected [\"c_k-1\"] or [\"c_k-2\", \"c_k-1\"]");
  for (std::size_t i = 0; i < inputs.size(); ++i)
    cell.inputs.push_back(name(inputs[i], child(inputs_ptr, i)));
  if (const Json* r = find(v, "reduction")) cell.reduction = boolean(*r, child(ptr, "reduction"));
  if (cell.reduction && cell.kind == CellForm::recurrent)
    fail(child(ptr, "reduction"), "a recurrent cell cannot be a reduction cell; expected false");
  if (const Json* p = find(v, "preprocess"))
    cell.preprocess = choice(*p, child(ptr, "preprocess"), {"auto", "none"}, "preprocess");
  const std::string nodes_ptr = child(ptr, "nodes");
  array(nodes, nodes_ptr, "nodes", "a cell needs at least one node; got an empty 'nodes'");
  for (std::size_t i = 0; i < nodes.size(); ++i)
    cell.nodes.push_back(read_node(nodes[i], child(nodes_ptr, i), cell, space));
  const Json* steps = find(v, "steps");
  if (cell.kind == CellForm::recurrent) {
    if (!steps) fail(ptr, "missing required field 'steps'; a recurrent cell gives its steps");
    cell.steps = static_cast<int>(integer(*steps, child(ptr, "steps"), 1, 1000));
    if (static_cast<std::size_t>(cell.steps) != cell.nodes.size())
      fail(child(ptr, "steps"), "steps is " + std::to_string(cell.steps) + " but the cell has " +
                                    std::to_string(cell.nodes.size()) +
                                    " nodes; expected one node per step");
  } else if (steps) {
    fail(child(ptr, "steps"),
         "'steps' applies only to recurrent cells; expected no 'steps' or "
         "\"kind\": \"recurrent\"");
  }
  read_output(output, child(ptr, "output"), cell);
  return cell;
}

void Reader::read_output(const Json& v, const std::string& ptr, Cell& cell) const {
  object(v, ptr);
  check_fields(v, ptr, {"concat", "node"});
  cell.output.pointer = ptr;
  const Json* concat = find(v, "concat");
  const Json* node = find(v, "node");
  if ((concat != nullptr) == (node != nullptr))
    fail(ptr, "give exactly one of 'concat' (a list of nodes) and 'node' (one node)");
  if (node) {
    cell.output.concat.push_back(string(*node, child(ptr, "node")));
    cell.output.pointers.push_back(child(ptr, "node"));
    return;
  }
  const std::string concat_ptr = child(ptr, "concat");
  array(*concat, concat_ptr, "node names", "empty concat; expected at least one node name");
  for (std::size_t i = 0; i < concat->size(); ++i) {
    cell.output.concat.push_back(string((*concat)[i], child(concat_ptr, i)));
    cell.output.pointers.push_back(child(concat_ptr, i));
  }
}

Node Reader::read_node(const Json& v, const std::string& ptr, const Cell& cell,
                       const Space& space) const {
  object(v, ptr);
  check_fields(v, ptr, {"name", "from", "ops", "op", "edges", "keep", "path_weights"});
  Node node;
  node.pointer = ptr;
  node.name = name(require(v, ptr, "name"), child(ptr, "name"));
  const Json* from = find(v, "from");
  const Json* ops = find(v, "ops");
  const Json* op = find(v, "op");
  const std::string no_edges =
      "node " + in_quotes(node.name) + " has no edges; expected at least one";
  if (const Json* edges = find(v, "edges")) {
    if (from || ops || op)
      fail(child(ptr, from  ? "from"
                      : ops ? "ops"
                            : "op"),
           "cannot be combined with 'edges'; give either 'edges' or 'from' with 'ops'/'op'");
    const std::string edges_ptr = child(ptr, "edges");
    array(*edges, edges_ptr, "edges", no_edges + " edge");
    for (std::size_t i = 0; i < edges->size(); ++i)
      node.edges.push_back(read_edge((*edges)[i], child(edges_ptr, i), cell, space));
  } else {
    if (!from) fail(ptr, "missing 'from' or 'edges'; a node needs incoming edges");
    if (!ops && !op) fail(ptr, "missing 'ops' or 'op'; 'from' needs the candidates of its edges");
    if (ops && op) fail(child(ptr, "op"), "give one of 'ops' and 'op', not both");
    const std::string from_ptr = child(ptr, "from");
    array(*from, from_ptr, "input or node names", no_edges + " name in 'from'");
    Edge proto;
    read_ops(v, ptr, cell, space, proto);
    for (std::size_t i = 0; i < from->size(); ++i) {
      Edge edge = proto;
      edge.pointer = edge.from_pointer = child(from_ptr, i);
      edge.from = string((*from)[i], edge.pointer);
      node.edges.push_back(std::move(edge));
    }
  }
  // No keep stays 0 (Node::keep): derivation then keeps every edge, `none` allowed, which
  // differs from an explicit keep equal to the in-degree.
  if (const Json* keep = find(v, "keep")) {
    const auto in_degree = static_cast<int64_t>(node.edges.size());
    const std::string keep_ptr = child(ptr, "keep");
    if (keep->is_number_unsigned() && keep->get<uint64_t>() > static_cast<uint64_t>(in_degree))
      fail(keep_ptr, "keep is " + describe(*keep) + " but node " + in_quotes(node.name) + " has " +
                         std::to_string(in_degree) + (in_degree == 1 ? " edge" : " edges") +
                         "; expected 1 to " + std::to_string(in_degree));
    node.keep = static_cast<int>(integer(*keep, keep_ptr, 1, in_degree));
  }
  if (const Json* pw = find(v, "path_weights"))
    node.path_weights = boolean(*pw, child(ptr, "path_weights"));
  return node;
}

Edge Reader::read_edge(const Json& v, const std::string& ptr, const Cell& cell,
                       const Space& space) const {
  object(v, ptr);
  check_fields(v, ptr, {"from", "ops", "op", "init", "init_one_hot", "coefficient"});
  Edge edge;
  edge.pointer = ptr;
  edge.from_pointer = child(ptr, "from");
  edge.from = string(require(v, ptr, "from"), edge.from_pointer);
  const Json* op = find(v, "op");
  if (op && find(v, "ops")) fail(child(ptr, "op"), "give one of 'ops' and 'op', not both");
  if (!op && !find(v, "ops"))
    fail(ptr, "missing 'ops' or 'op'; an edge needs its candidate ops or its one fixed op");
  read_ops(v, ptr, cell, space, edge);
  if (const Json* init = find(v, "init")) {
    const std::string init_ptr = child(ptr, "init");
    if (op)
      fail(init_ptr, "'init' needs candidate 'ops'; a fixed 'op' edge has no architecture weights");
    object(*init, init_ptr);
    for (const auto& item : init->items()) {
      const std::string p = child(init_ptr, item.key());
      if (std::find(edge.ops.begin(), edge.ops.end(), item.key()) == edge.ops.end())
        fail(p, "init names " + in_quotes(item.key()) + ", which is not a candidate of this edge" +
                    unknown_hint(item.key(), edge.ops));
      edge.init[item.key()] = number(item.value(), p);
    }
  }
  if (const Json* hot = find(v, "init_one_hot")) {
    const std::string hot_ptr = child(ptr, "init_one_hot");
    if (op)
      fail(hot_ptr,
           "'init_one_hot' needs candidate 'ops'; a fixed 'op' edge has no architecture weights");
    if (find(v, "init"))
      fail(hot_ptr, "give one of 'init' (logits) and 'init_one_hot' (a one-hot start), not both");
    edge.init_one_hot = string(*hot, hot_ptr);
    if (std::find(edge.ops.begin(), edge.ops.end(), edge.init_one_hot) == edge.ops.end())
      fail(hot_ptr, "init_one_hot names " + in_quotes(edge.init_one_hot) +
                        ", which is not a candidate of this edge" +
                        unknown_hint(edge.init_one_hot, edge.ops));
  }
  if (const Json* c = find(v, "coefficient"))
    edge.coefficient = read_coefficient(*c, child(ptr, "coefficient"));
  return edge;
}

// A number (fixed), or {"init": number, "trainable": boolean}.
EdgeCoefficient Reader::read_coefficient(const Json& v, const std::string& ptr) const {
  if (v.is_number()) return {.value = number(v, ptr), .trainable = false};
  if (!v.is_object())
    fail(ptr,
         "expected a number (a fixed coefficient) or {\"init\": number, \"trainable\": "
         "true}, got " +
             describe(v));
  check_fields(v, ptr, {"init", "trainable"});
  const std::string why = "; a coefficient object gives its initial value and whether it trains";
  EdgeCoefficient c;
  c.value = number(require(v, ptr, "init", why), child(ptr, "init"));
  c.trainable = boolean(require(v, ptr, "trainable", why), child(ptr, "trainable"));
  return c;
}

// The candidates of the edges made by `holder` (a node with `from`, or an edge).
void Reader::read_ops(const Json& holder, const std::string& ptr, const Cell& cell,
                      const Space& space, Edge& edge) const {
  if (const Json* op = find(holder, "op")) {
    edge.ops = {op_name(*op, child(ptr, "op"), cell)};
    return;
  }
  const Json& ops = *find(holder, "ops");
  const std::string ops_ptr = child(ptr, "ops");
  if (ops.is_string()) {
    const std::string set = ops.get<std::string>();
    const auto it = space.op_sets.find(set);
    if (it == space.op_sets.end()) {
      Names known;
      for (const auto& entry : space.op_sets) known.push_back(entry.first);
      fail(ops_ptr, "unknown op set " + in_quotes(set) +
                        unknown_hint(set, known, "; no op sets are defined (top-level 'op_sets')"));
    }
    for (const std::string& name : it->second)
      if (!find_candidate(name, cell.kind))
        fail(ops_ptr, "op set " + in_quotes(set) + " contains " + in_quotes(name) +
                          ", which is not a " + form_name(cell.kind) + " op; cell " +
                          in_quotes(cell.name) + " can use: " + join(op_names(cell.kind)));
    edge.op_set = set;
    edge.ops = it->second;
    return;
  }
  if (!ops.is_array())
    fail(ops_ptr, "expected an op set name or an array of op names, got " + describe(ops));
  if (ops.empty()) fail(ops_ptr, "empty 'ops'; expected at least one candidate op");
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const std::string name = op_name(ops[i], child(ops_ptr, i), cell);
    if (std::find(edge.ops.begin(), edge.ops.end(), name) != edge.ops.end())
      fail(child(ops_ptr, i),
           "duplicate op " + in_quotes(name) + "; each candidate may appear once");
    edge.ops.push_back(name);
  }
}

std::string Reader::op_name(const Json& v, const std::string& ptr, const Cell& cell) const {
  std::string s = string(v, ptr);
  if (find_candidate(s, cell.kind)) return s;
  const CellForm other =
      cell.kind == CellForm::recurrent ? CellForm::convolutional : CellForm::recurrent;
  if (find_candidate(s, other))
    fail(ptr, "op " + in_quotes(s) + " is a " + form_name(other) + " op, but cell " +
                  in_quotes(cell.name) + " is " + form_name(cell.kind) +
                  "; expected one of: " + join(op_names(cell.kind)));
  fail(ptr, "unknown op " + in_quotes(s) + unknown_hint(s, op_names(cell.kind)));
}

Network Reader::read_network(const Json& v, const std::string& ptr) const {
  object(v, ptr);
  check_fields(v, ptr, {"input", "classes", "stem", "body", "head", "edge_bn", "dropout"});
  Network net;
  net.pointer = ptr;
  const Json& input = require(v, ptr, "input");
  const Json& classes = require(v, ptr, "classes");
  const Json& body = require(v, ptr, "body");
  const Json& head = require(v, ptr, "head");
  const std::string input_ptr = child(ptr, "input");
  if (!input.is_array() || (input.size() != 3 && input.size() != 1))
    fail(input_ptr,
         "expected [channels, height, width] (images) or [T] (tokens per sample of a "
         "recurrent language model), got " +
             describe(input) + (input.is_array() ? " of " + std::to_string(input.size()) : ""));
  if (input.size() == 1) {
    net.sequence_length = integer(input[0], child(input_ptr, 0), 1, 4096);
    net.in_channels = net.in_height = net.in_width = 0;
  } else {
    net.in_channels = integer(input[0], child(input_ptr, 0), 1, 4096);
    net.in_height = integer(input[1], child(input_ptr, 1), 1, 4096);
    net.in_width = integer(input[2], child(input_ptr, 2), 1, 4096);
  }
  net.classes = integer(classes, child(ptr, "classes"), 2, 100000);
  if (const Json* d = find(v, "dropout")) {
    if (!net.is_language_model())
      fail(child(ptr, "dropout"),
           "'dropout' applies to recurrent language models (\"input\": [T]); an image network "
           "has none");
    net.dropout = read_dropout(*d, child(ptr, "dropout"));
  }
  if (const Json* e = find(v, "edge_bn")) net.edge_bn = boolean(*e, child(ptr, "edge_bn"));
  if (const Json* stem = find(v, "stem")) {
    const std::string stem_ptr = child(ptr, "stem");
    array(*stem, stem_ptr, "layers", "");
    for (std::size_t i = 0; i < stem->size(); ++i)
      net.stem.push_back(read_layer((*stem)[i], child(stem_ptr, i), true));
  }
  const std::string body_ptr = child(ptr, "body");
  array(body, body_ptr, "stages", "empty body; expected at least one stage");
  for (std::size_t i = 0; i < body.size(); ++i)
    net.body.push_back(read_stage(body[i], child(body_ptr, i)));
  const std::string head_ptr = child(ptr, "head");
  array(head, head_ptr, "layers", "empty head; expected layers ending in 'linear'");
  for (std::size_t i = 0; i < head.size(); ++i) {
    net.head.push_back(read_layer(head[i], child(head_ptr, i), false));
    const bool last = i + 1 == head.size();
    if (net.head.back().op == "linear" && !last)
      fail(child(head_ptr, i), "'linear' must be the last head layer; it maps to the classes");
    if (net.head.back().op != "linear" && last)
      fail(child(head_ptr, i), "the head must end with 'linear' (to the classes), got " +
                                   in_quotes(net.head.back().op));
  }
  return net;
}

RecurrentDropout Reader::read_dropout(const Json& v, const std::string& ptr) const {
  object(v, ptr);
  check_fields(v, ptr, {"output", "hidden", "x", "input", "embedding"});
  RecurrentDropout d;
  d.pointer = ptr;
  auto probability = [&](const char* key, double& out) {
    const Json* p = find(v, key);
    if (p == nullptr) return;
    out = number(*p, child(ptr, key));
    if (out < 0 || out >= 1)
      fail(child(ptr, key), "expected a dropout probability in [0, 1), got " + describe(*p));
  };
  probability("output", d.output);
  probability("hidden", d.hidden);
  probability("x", d.x);
  probability("input", d.input);
  probability("embedding", d.embedding);
  return d;
}

Layer Reader::read_layer(const Json& v, const std::string& ptr, bool in_stem) const {
  object(v, ptr);
  if (!find(v, "op")) check_fields(v, ptr, {"op", "channels", "stride", "affine"});
  Layer layer;
  layer.pointer = ptr;
  layer.op = string(require(v, ptr, "op"), child(ptr, "op"));
  const Names stem_ops = {"conv_3x3", "conv_1x1", "batch_norm", "relu"};
  const Names all_ops = {"conv_3x3", "conv_1x1", "batch_norm", "relu", "global_avg_pool", "linear"};
  const Names& ops = in_stem ? stem_ops : all_ops;
  if (std::find(ops.begin(), ops.end(), layer.op) == ops.end())
    fail(child(ptr, "op"),
         (in_stem && std::find(all_ops.begin(), all_ops.end(), layer.op) != all_ops.end()
              ? in_quotes(layer.op) + " cannot be a stem layer"
              : "unknown layer op " + in_quotes(layer.op)) +
             unknown_hint(layer.op, ops));
  const std::string context = " for a " + in_quotes(layer.op) + " layer";
  if (layer.op == "conv_3x3" || layer.op == "conv_1x1") {
    check_fields(v, ptr, {"op", "channels", "stride"}, context);
    const Json& channels = require(v, ptr, "channels", "; a convolution needs its output channels");
    layer.channels = integer(channels, child(ptr, "channels"), 1, 65536);
    if (const Json* s = find(v, "stride")) layer.stride = stride(*s, child(ptr, "stride"));
  } else if (layer.op == "batch_norm") {
    check_fields(v, ptr, {"op", "affine"}, context);
    if (const Json* a = find(v, "affine")) layer.affine = boolean(*a, child(ptr, "affine"));
  } else {
    check_fields(v, ptr, {"op"}, context);
  }
  return layer;
}

Stage Reader::read_stage(const Json& v, const std::string& ptr) const {
  object(v, ptr);
  check_fields(v, ptr,
               {"cell", "block", "channels", "repeat", "stride", "momentum", "inner_channels",
                "width_search"});
  Stage stage;
  stage.pointer = ptr;
  const Json* cell = find(v, "cell");
  const Json* block = find(v, "block");
  if (cell && block) fail(ptr, "give one of 'cell' and 'block', not both");
  if (!cell && !block) fail(ptr, "missing 'cell' or 'block'; a stage stacks a cell or a block");
  if (cell) stage.cell = string(*cell, child(ptr, "cell"));
  if (block)
    stage.block = choice(*block, child(ptr, "block"), {"residual", "basic", "heavy_ball"}, "block");
  if (const Json* m = find(v, "momentum")) {
    if (stage.block != "heavy_ball")
      fail(child(ptr, "momentum"),
           "'momentum' applies only to \"block\": \"heavy_ball\"; expected no 'momentum' here");
    stage.momentum = number(*m, child(ptr, "momentum"));
  }
  stage.channels = integer(require(v, ptr, "channels"), child(ptr, "channels"), 1, 65536);
  if (const Json* r = find(v, "repeat"))
    stage.repeat = static_cast<int>(integer(*r, child(ptr, "repeat"), 1, 1000));
  if (const Json* s = find(v, "stride")) {
    stage.stride = stride(*s, child(ptr, "stride"));
    if (cell && stage.stride != 1)
      fail(child(ptr, "stride"),
           "a cell stage cannot be strided; expected stride 1 (a cell "
           "halves the size with \"reduction\": true)");
  }
  if (const Json* w = find(v, "inner_channels")) {
    if (cell) fail(child(ptr, "inner_channels"), "only a block has an inner width");
    stage.inner_channels = integer(*w, child(ptr, "inner_channels"), 1, 65536);
  }
  if (const Json* w = find(v, "width_search")) {
    if (cell)
      fail(child(ptr, "width_search"),
           "only a block's inner width can be searched; a cell's edges choose ops");
    stage.width_search = boolean(*w, child(ptr, "width_search"));
  }
  return stage;
}

ArchOptions Reader::read_arch(const Json& v, const std::string& ptr) const {
  object(v, ptr);
  check_fields(v, ptr, {"init_std", "share"});
  ArchOptions arch;
  if (const Json* s = find(v, "init_std")) {
    arch.init_std = number(*s, child(ptr, "init_std"));
    if (arch.init_std < 0)
      fail(child(ptr, "init_std"), "expected a number >= 0, got " + describe(*s));
  }
  if (const Json* s = find(v, "share")) {
    // "none" (an architecture per cell instance) compiles and searches, but derivation
    // writes one cell definition per cell type: refused here, before a search loses an
    // epoch to it.
    const std::string share_ptr = child(ptr, "share");
    if (s->is_string() && s->get<std::string>() == "none")
      fail(share_ptr,
           "\"share\": \"none\" (one architecture per cell instance) is not supported: "
           "derivation needs one architecture per cell type, written back as that cell's "
           "definition; expected \"cell_type\" (the default), or a separate cell for each "
           "instance that should get its own architecture");
    choice(*s, share_ptr, {"cell_type"}, "share");
  }
  return arch;
}

}  // namespace

Space read_space(const std::string& text, const std::string& file) {
  const Json root = parse_json(text, file);
  try {
    Space space = Reader(file).read(root);
    // The metadata as written: `root` does not keep key order, the JsonValue parse does.
    if (root.contains("metadata")) space.metadata = *parse_json_string(text, file).find("metadata");
    return space;
  } catch (const Json::exception& ex) {  // a missed type check: still the user's input
    throw error(file, ": invalid spec (", ex.what(), ")");
  }
}

}  // namespace cellgraph::spec::detail
