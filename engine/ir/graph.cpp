#include "engine/ir/graph.h"

#include <cmath>

#include "engine/error.h"
#include "ops/schema.h"

namespace cellgraph::ir {

double one_hot_logit(size_t columns) {
  CG_ASSERT(columns >= 2, "a one-hot start needs two or more columns, got ", columns);
  return std::log(kOneHotWeight * double(columns - 1) / (1.0 - kOneHotWeight));
}

int64_t Graph::weight_count() const {
  int64_t n = 0;
  for (const Parameter& p : params)
    if (!p.is_buffer && !p.auxiliary) n += p.shape.numel();
  return n;
}

int64_t Graph::auxiliary_weight_count() const {
  int64_t n = 0;
  for (const Parameter& p : params)
    if (!p.is_buffer && p.auxiliary) n += p.shape.numel();
  return n;
}

int64_t Graph::activation_bytes_per_sample() const {
  int64_t n = 0;
  for (const Value& v : values)
    if (v.kind == ValueKind::activation) n += v.shape.numel();
  return n * int64_t(sizeof(float));
}

int64_t Graph::macs() const {
  int64_t total = 0;
  for (const Node& n : nodes) {
    if (n.auxiliary) continue;
    if (n.op == OpKind::conv2d) {
      const Shape& w = value(n.inputs[1]).shape;  // [O, C/g, kh, kw]
      total += value(n.outputs[0]).shape.numel() * w[1] * w[2] * w[3];
    } else if (n.op == OpKind::linear) {
      const Shape& w = value(n.inputs[1]).shape;  // [M, K]; output [rows..., M]
      total += value(n.outputs[0]).shape.numel() * w[1];
    }
  }
  return total;
}

void Graph::verify() const {
  std::vector<bool> defined(values.size(), false);
  for (size_t v = 0; v < values.size(); ++v)
    if (values[v].kind != ValueKind::activation) defined[v] = true;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    std::vector<Shape> shapes;
    for (ValueId in : n.inputs) {
      if (!in.valid()) {
        shapes.emplace_back();
        continue;
      }
      CG_ASSERT(in.index() < values.size(), n.label, ": input id out of range");
      CG_ASSERT(defined[in.index()], n.label, ": reads a value before it is produced");
      shapes.push_back(value(in).shape);
    }
    const std::vector<Shape> expect = schema(n.op).infer(n.attrs, shapes);
    CG_ASSERT(expect.size() == n.outputs.size(), n.label, ": output count");
    for (size_t o = 0; o < n.outputs.size(); ++o) {
      const Value& out = value(n.outputs[o]);
      CG_ASSERT(out.producer.value == int32_t(i), n.label, ": producer link");
      CG_ASSERT(out.shape == expect[o], n.label, ": shape ", out.shape.str(), " vs ",
                expect[o].str());
      defined[n.outputs[o].index()] = true;
    }
    if (n.drops_absent_inputs)
      CG_ASSERT(
          n.input_candidates.size() + (n.op == OpKind::weighted_sum ? 1 : 0) == n.inputs.size(),
          n.label, ": one candidate per droppable input");
  }
  for (const Parameter& p : params) CG_ASSERT(value(p.value).shape == p.shape, p.name);
  for (const Candidate& c : candidates) {
    CG_ASSERT(c.arch.valid() && c.arch.index() < arch_groups.size(), c.label);
    CG_ASSERT(c.row < arch_group(c.arch).rows, c.label);
    CG_ASSERT(c.output.valid() && defined[c.output.index()], c.label);
  }
  CG_ASSERT(input.valid() && logits.valid(), "graph without input or logits");
  CG_ASSERT(!aux_logits.valid() || defined[aux_logits.index()], "aux_logits not produced");
  CG_ASSERT(state_in.valid() == state_out.valid(), "a carried state needs state_in and state_out");
  CG_ASSERT(!state_in.valid() || value(state_in).kind == ValueKind::state, "state_in kind");
  CG_ASSERT(!state_out.valid() || defined[state_out.index()], "state_out not produced");
}

}  // namespace cellgraph::ir
