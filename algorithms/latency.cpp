#include "algorithms/latency.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <set>

#include "engine/error.h"
#include "engine/machine.h"
#include "engine/sched/executor.h"
#include "engine/sched/plan.h"
#include "engine/tensor/random.h"
#include "engine/threads.h"
#include "ops/ops.h"
#include "spec/detail.h"

namespace cellgraph::algorithms {

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median milliseconds of `run` over the options' repeats, after its warm-up runs.
double time_ms(const LatencyOptions& o, const std::function<void()>& run) {
  for (int i = 0; i < o.warmup; ++i) run();
  std::vector<double> ms;
  for (int i = 0; i < std::max(o.repeats, 1); ++i) {
    const Clock::time_point start = Clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  return median(ms);
}

// Attributes in evaluation mode (BN on running statistics, no dropout or drop-path).
Attrs eval_attrs(const Attrs& attrs) {
  Attrs a = attrs;
  if (auto* bn = std::get_if<BatchNormAttrs>(&a)) bn->training = false;
  if (auto* d = std::get_if<DropoutAttrs>(&a)) d->training = false;
  if (auto* d = std::get_if<DropPathAttrs>(&a)) d->training = false;
  return a;
}

// The nodes a candidate runs: its own, and the shared nodes (a ReLU of the edge input,
// builder.h) they read, in graph order.
std::vector<ir::NodeId> candidate_nodes(const ir::Graph& graph, ir::CandidateId id) {
  std::set<int32_t> nodes;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& n = graph.nodes[i];
    if (n.candidate != id) continue;
    nodes.insert(int32_t(i));
    for (ir::ValueId in : n.inputs) {
      if (!in.valid() || graph.value(in).kind != ir::ValueKind::activation) continue;
      const ir::NodeId p = graph.value(in).producer;
      const ir::Node& producer = graph.node(p);
      if (producer.absent_with_input && !producer.candidate.valid()) nodes.insert(p.value);
    }
  }
  std::vector<ir::NodeId> out;
  out.reserve(nodes.size());
  for (int32_t n : nodes) out.push_back(ir::NodeId{n});
  return out;
}

// A search cell's node that sums its edges' candidates in one weighted sum
// (spec/compile.cpp): a derived network sums its edges instead (add_n), so the rest is
// timed with that add_n, over one input per edge.
bool node_sum_of_candidates(const ir::Node& n) {
  const auto* ws = std::get_if<WeightedSumAttrs>(&n.attrs);
  return ws != nullptr && !ws->rows.empty();
}

// A search cell's concat with the next cells' preprocessing ReLU folded in
// (spec/fold_concat_relu.h).
bool folded_relu(const ir::Node& n) {
  const auto* c = std::get_if<ConcatAttrs>(&n.attrs);
  return c != nullptr && c->relu;
}

// What a node runs when timed: its op and inputs, or a node sum's add_n over its edges.
OpKind timed_op(const ir::Node& n) { return node_sum_of_candidates(n) ? OpKind::add_n : n.op; }
std::vector<ir::ValueId> timed_inputs(const ir::Node& n) {
  if (!node_sum_of_candidates(n)) return n.inputs;
  const auto& rows = std::get<WeightedSumAttrs>(n.attrs).rows;
  std::vector<ir::ValueId> edges;
  for (size_t i = 0; i < rows.size(); ++i)
    if (i == 0 || rows[i] != rows[i - 1]) edges.push_back(n.inputs[i]);
  return edges;
}

// Runs `nodes` on random inputs of their shapes at `batch` (eval mode, no autodiff); a
// preprocessing ReLU shared by several search cells once per cell (ir::Node::cells_sharing),
// also where it is folded into the concat before it.
double time_nodes(const ir::Graph& graph, const ir::ParameterStore& params,
                  const std::vector<ir::NodeId>& nodes, const LatencyOptions& o, Rng& rng) {
  std::set<int32_t> produced;
  for (ir::NodeId id : nodes)
    for (ir::ValueId out : graph.node(id).outputs) produced.insert(out.value);
  std::map<int32_t, Var> fed;  // the edge input(s)
  for (ir::NodeId id : nodes)
    for (ir::ValueId in : timed_inputs(graph.node(id))) {
      if (!in.valid() || produced.count(in.value) || fed.count(in.value)) continue;
      const ir::Value& v = graph.value(in);
      if (v.kind != ir::ValueKind::activation && v.kind != ir::ValueKind::input) continue;
      Shape s = v.shape;
      s[0] = o.batch;
      fed[in.value] = Var(normal_tensor(s, 0, 1, rng));
    }
  NoGradGuard no_grad;
  return time_ms(o, [&] {
    std::map<int32_t, Var> values = fed;
    for (ir::NodeId id : nodes) {
      const ir::Node& n = graph.node(id);
      std::vector<Var> inputs;
      for (ir::ValueId in : timed_inputs(n)) {
        if (!in.valid()) {
          inputs.emplace_back();
          continue;
        }
        const ir::Value& v = graph.value(in);
        const bool weight = v.kind == ir::ValueKind::parameter || v.kind == ir::ValueKind::buffer;
        inputs.push_back(weight ? params[v.param] : values.at(in.value));
      }
      std::vector<Var> outs;
      if (folded_relu(n)) {  // the concat once, its cells' ReLUs each, as a derived network
        const Var joined = ops::concat(inputs);
        for (int32_t c = 0; c < n.cells_sharing; ++c) outs = {ops::relu(joined)};
      } else if (const auto* conv = std::get_if<ConvAttrs>(&n.attrs);
                 conv != nullptr && conv->relu_input) {
        // A ReLU folded into a conv (spec/fold_conv_relu.h): the ReLU and the conv, as a
        // derived network runs them.
        ConvAttrs plain = *conv;
        plain.relu_input = false;
        inputs[0] = ops::relu(inputs[0]);
        outs = ops::apply(OpKind::conv2d, plain, inputs);
      } else {
        const Attrs attrs = node_sum_of_candidates(n) ? Attrs(NoAttrs{}) : eval_attrs(n.attrs);
        outs = ops::apply(timed_op(n), attrs, inputs);
        for (int32_t c = 1; c < n.cells_sharing; ++c) outs = ops::apply(timed_op(n), attrs, inputs);
      }
      for (size_t k = 0; k < outs.size(); ++k) values[n.outputs[k].value] = std::move(outs[k]);
    }
  });
}

// The nodes outside every candidate: stem, preprocessing, node sums, fixed edges and blocks,
// head; not the mixed edges' weighted sums (a derived network has none) nor the auxiliary
// head.
std::vector<ir::NodeId> rest_nodes(const ir::Graph& graph) {
  std::vector<ir::NodeId> out;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const ir::Node& n = graph.nodes[i];
    const bool mix =
        n.op == OpKind::weighted_sum && n.drops_absent_inputs && !node_sum_of_candidates(n);
    if (!n.candidate.valid() && !n.absent_with_input && !mix && !n.auxiliary)
      out.push_back(ir::NodeId{int32_t(i)});
  }
  return out;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// A JSON pointer token (RFC 6901): the spec reader's escaping.
std::string token(const std::string& key) { return spec::detail::escape_pointer_token(key); }

// "n2/e1<-n1" -> ("n2", "n1"); false for another form.
bool split_row_label(const std::string& label, std::string& node, std::string& from) {
  const size_t slash = label.find("/e"), arrow = label.find("<-");
  if (slash == std::string::npos || arrow == std::string::npos || arrow < slash) return false;
  node = label.substr(0, slash);
  from = label.substr(arrow + 2);
  return true;
}

}  // namespace

double LatencyTable::at(const std::string& cell, const std::string& edge,
                        const std::string& op) const {
  const auto c = ms.find(cell);
  if (c == ms.end()) throw error(file, ": no cell type '", cell, "'; is it a table of this space?");
  const auto e = c->second.find(edge);
  if (e == c->second.end())
    throw error(file, ":/cells/", token(cell), ": no edge '", edge,
                "'; is it a table of this space?");
  const auto o = e->second.find(op);
  if (o == e->second.end())
    throw error(file, ":/cells/", token(cell), "/", token(edge), ": no op '", op,
                "'; is it a table of this space?");
  return o->second;
}

LatencyTable measure_latency(const ir::Graph& graph, const spec::Space& space,
                             const LatencyOptions& options) {
  if (options.batch < 1) throw error("latency: batch must be >= 1, got ", options.batch);
  LatencyTable t;
  t.spec = space.file;
  t.space = space.name;
  t.input = {space.network.in_channels, space.network.in_height, space.network.in_width};
  t.device = "CPU: " + cpu_model();
  t.threads = num_threads();
  t.batch = options.batch;
  t.date = utc_now();
  t.warmup = options.warmup;
  t.repeats = options.repeats;
  t.file = space.file + " (measured)";
  const ir::ParameterStore params(graph, 0);
  std::map<std::string, std::set<int32_t>> instances;
  Rng rng(7);
  for (size_t i = 0; i < graph.candidates.size(); ++i) {
    const ir::Candidate& c = graph.candidates[i];
    const ir::ArchGroup& g = graph.arch_groups[c.arch.index()];
    const std::string& op = g.columns[size_t(c.column)];
    instances[g.cell].insert(c.cell);
    const std::vector<ir::NodeId> nodes = candidate_nodes(graph, ir::CandidateId{int32_t(i)});
    const double ms =
        op == "none" || nodes.empty() ? 0.0 : time_nodes(graph, params, nodes, options, rng);
    t.ms[g.cell][g.row_labels[size_t(c.row)]][op] += ms;
  }
  for (const auto& [cell, set] : instances) t.instances[cell] = int64_t(set.size());
  t.rest_ms = time_nodes(graph, params, rest_nodes(graph), options, rng);
  return t;
}

double measure_forward_ms(const ir::Graph& graph, const ir::ParameterStore& params,
                          const LatencyOptions& options) {
  if (!graph.arch_groups.empty())
    throw error("latency: the end-to-end forward latency is of a fixed network, not a supernet");
  const sched::Plan plan = sched::make_plan(graph, sched::all_active(graph));
  const Shape& in = graph.value(graph.input).shape;
  Rng rng(11);
  const Var images(normal_tensor({options.batch, in[1], in[2], in[3]}, 0, 1, rng));
  NoGradGuard no_grad;
  return time_ms(options, [&] {
    sched::run(graph, params, plan, images, sched::RunOptions{.training = false});
  });
}

spec::JsonValue latency_json(const LatencyTable& t) {
  using spec::JsonValue;
  JsonValue j = JsonValue::object();
  j.set("format", 1);
  j.set("what",
        "cellgraph latency table: forward milliseconds of each candidate op of each mixed edge "
        "(eval mode, median), summed over the cell type's instances");
  j.set("spec", t.spec);
  j.set("space", t.space);
  JsonValue input = JsonValue::array();
  for (int64_t v : t.input) input.push_back(v);
  j.set("input", input);
  j.set("device", t.device);
  j.set("threads", t.threads);
  j.set("batch", t.batch);
  j.set("date", t.date);
  j.set("warmup", t.warmup);
  j.set("repeats", t.repeats);
  j.set("rest_ms", t.rest_ms);
  JsonValue instances = JsonValue::object();
  for (const auto& [cell, n] : t.instances) instances.set(cell, n);
  j.set("instances", instances);
  JsonValue cells = JsonValue::object();
  for (const auto& [cell, edges] : t.ms) {
    JsonValue e = JsonValue::object();
    for (const auto& [edge, ops] : edges) {
      JsonValue o = JsonValue::object();
      for (const auto& [op, ms] : ops) o.set(op, ms);
      e.set(edge, o);
    }
    cells.set(cell, e);
  }
  j.set("cells", cells);
  return j;
}

namespace {
const spec::JsonValue& member(const spec::JsonValue& object, const std::string& key,
                              const std::string& file, const std::string& pointer) {
  const spec::JsonValue* v = object.find(key);
  if (v == nullptr)
    throw error(file, ":", pointer.empty() ? "/" : pointer, ": missing '", key, "'");
  return *v;
}

double non_negative(const spec::JsonValue& v, const std::string& file, const std::string& pointer) {
  if (!v.is_number() || !(v.as_double() >= 0) || !std::isfinite(v.as_double()))
    throw error(file, ":", pointer, ": expected a number of milliseconds >= 0");
  return v.as_double();
}

const spec::JsonValue& object_at(const spec::JsonValue& v, const std::string& file,
                                 const std::string& pointer) {
  if (!v.is_object()) throw error(file, ":", pointer, ": expected an object");
  return v;
}
}  // namespace

LatencyTable read_latency_table(const std::string& path) {
  const spec::JsonValue j = spec::parse_json_file(path);
  LatencyTable t;
  t.file = path;
  object_at(j, path, "/");
  const spec::JsonValue& format = member(j, "format", path, "");
  if (!format.is_integer() || format.as_integer() != 1)
    throw error(path, ":/format: expected 1 (a table written by `cellgraph latency`)");
  const auto text = [&](const char* key) {
    const spec::JsonValue& v = member(j, key, path, "");
    if (!v.is_string()) throw error(path, ":/", key, ": expected a string");
    return v.as_string();
  };
  const auto integer = [&](const char* key) {
    const spec::JsonValue& v = member(j, key, path, "");
    if (!v.is_integer() || v.as_integer() < 0)
      throw error(path, ":/", key, ": expected an integer >= 0");
    return v.as_integer();
  };
  t.spec = text("spec");
  t.space = text("space");
  t.device = text("device");
  t.date = text("date");
  t.threads = int(integer("threads"));
  t.batch = integer("batch");
  t.warmup = int(integer("warmup"));
  t.repeats = int(integer("repeats"));
  t.rest_ms = non_negative(member(j, "rest_ms", path, ""), path, "/rest_ms");
  const spec::JsonValue& input = member(j, "input", path, "");
  if (!input.is_array() || input.size() != 3)
    throw error(path, ":/input: expected [channels, height, width]");
  for (const spec::JsonValue& v : input.items()) {
    if (!v.is_integer()) throw error(path, ":/input: expected [channels, height, width]");
    t.input.push_back(v.as_integer());
  }
  for (const auto& [cell, n] :
       object_at(member(j, "instances", path, ""), path, "/instances").members()) {
    if (!n.is_integer() || n.as_integer() < 1)
      throw error(path, ":/instances/", token(cell), ": expected an integer >= 1");
    t.instances[cell] = n.as_integer();
  }
  for (const auto& [cell, edges] :
       object_at(member(j, "cells", path, ""), path, "/cells").members()) {
    const std::string cp = "/cells/" + token(cell);
    for (const auto& [edge, ops] : object_at(edges, path, cp).members()) {
      const std::string ep = cp + "/" + token(edge);
      for (const auto& [op, ms] : object_at(ops, path, ep).members())
        t.ms[cell][edge][op] = non_negative(ms, path, ep + "/" + token(op));
    }
  }
  return t;
}

std::vector<Tensor> latency_matrices(const ir::Graph& graph, const LatencyTable& table) {
  std::vector<Tensor> out;
  for (const ir::ArchGroup& g : graph.arch_groups) {
    if (g.kind != ir::ArchGroup::Kind::edge_ops) {
      out.emplace_back();
      continue;
    }
    const size_t cols = g.columns.size();
    std::vector<float> lat(size_t(g.rows) * cols);
    for (size_t r = 0; r < size_t(g.rows); ++r)
      for (size_t k = 0; k < cols; ++k)
        lat[r * cols + k] = float(table.at(g.cell, g.row_labels[r], g.columns[k]));
    out.push_back(Tensor::from_vector({g.rows, int64_t(cols)}, lat));
  }
  return out;
}

namespace {
// softmax of one row, in double.
std::vector<double> softmax_row(const float* a, int64_t n) {
  double top = a[0];
  for (int64_t j = 1; j < n; ++j) top = std::max(top, double(a[j]));
  std::vector<double> p(static_cast<size_t>(n));
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += p[size_t(j)] = std::exp(double(a[j]) - top);
  for (double& v : p) v /= sum;
  return p;
}
}  // namespace

Tensor latency_gradient(const Tensor& logits, const Tensor& latency) {
  CG_ASSERT(logits.shape() == latency.shape(), "latency ", latency.shape().str(), " for logits ",
            logits.shape().str());
  const Tensor a = logits.contiguous(), lat = latency.contiguous();
  const int64_t rows = a.dim(0), cols = a.dim(1);
  std::vector<float> g(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<double> p = softmax_row(a.data() + r * cols, cols);
    const float* l = lat.data() + r * cols;
    double mean = 0;
    for (int64_t j = 0; j < cols; ++j) mean += p[size_t(j)] * double(l[j]);
    for (int64_t j = 0; j < cols; ++j)
      g[size_t(r * cols + j)] = float(p[size_t(j)] * (double(l[j]) - mean));
  }
  return Tensor::from_vector({rows, cols}, g);
}

double expected_latency(const Tensor& logits, const Tensor& latency) {
  const Tensor a = logits.contiguous(), lat = latency.contiguous();
  const int64_t rows = a.dim(0), cols = a.dim(1);
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<double> p = softmax_row(a.data() + r * cols, cols);
    for (int64_t j = 0; j < cols; ++j) total += p[size_t(j)] * double(lat.data()[r * cols + j]);
  }
  return total;
}

double estimated_latency_ms(const LatencyTable& table, const spec::Space& fixed) {
  double total = table.rest_ms;
  for (const spec::Cell& cell : fixed.cells) {
    const auto edges = table.ms.find(cell.name);
    if (edges == table.ms.end()) continue;  // a fixed cell of the space: part of rest_ms
    std::set<std::string> used;
    for (const spec::Node& node : cell.nodes)
      for (const spec::Edge& edge : node.edges) {
        const std::string* label = nullptr;
        for (const auto& [row, ops] : edges->second) {
          std::string n, from;
          if (used.count(row) || !split_row_label(row, n, from)) continue;
          if (n == node.name && from == edge.from) {
            label = &row;
            break;
          }
        }
        if (label == nullptr) continue;  // a fixed edge of the search cell: in rest_ms
        used.insert(*label);
        total += table.at(cell.name, *label, edge.ops.at(0));
      }
  }
  return total;
}

}  // namespace cellgraph::algorithms
