// Appends nodes, values and parameters to a Graph while keeping its invariants: shapes
// come from the op schemas, labels form a path ("cells.3/n1/e0/sep_conv_3x3"), and a
// shape error is reported as a user Error naming the node.
// It lives beside the compiler, its one user; what it builds is an ir::Graph, hence ir::.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "engine/ir/graph.h"

namespace cellgraph::ir {

class Builder {
 public:
  explicit Builder(Graph& graph) : graph_(graph) {}

  ValueId input(const Shape& per_sample_shape);
  ValueId state(const Shape& per_sample_shape);  // graph.state_in of a recurrent network
  ValueId parameter(const std::string& name, const Shape& shape, Init init, int64_t fan_in = 1);
  ValueId buffer(const std::string& name, const Shape& shape, Init init);
  // A [1] scalar starting at `value`: a parameter when trainable, else a buffer (a constant
  // that no optimizer touches).
  ValueId scalar(const std::string& name, double value, bool trainable);
  ValueId coefficients(ArchGroupId group);

  // Adds one op node; outputs get the shapes the schema infers. Throws Error
  // "<context>: <label>: <schema message>" when the shapes do not fit.
  // An op whose schema is shared_per_input is built once per input value and share scope:
  // a second call returns the first node's output, relabelled "<scope>.<op>_of.<input>".
  // When readers of different candidates share it, the node leaves its candidate (it must
  // run while any reader's candidate is active; the plan skips it when no reader runs).
  std::vector<ValueId> op(OpKind kind, const Attrs& attrs, const std::vector<ValueId>& inputs,
                          const std::string& label);
  ValueId op1(OpKind kind, const Attrs& attrs, const std::vector<ValueId>& inputs,
              const std::string& label) {
    return op(kind, attrs, inputs, label)[0];
  }

  // While set, new nodes and parameters belong to this candidate (it runs only when
  // active, its weights count as that candidate's).
  void set_candidate(CandidateId id) { candidate_ = id; }
  CandidateId candidate() const { return candidate_; }
  // Nodes are shared only within one scope (a label prefix such as "cells.3"), so a
  // shared node stays inside the cell or block the exporter cuts out.
  // `across_cells`: the scope spans several cells (a search network's preprocessing); each
  // further read counts in the shared node's cells_sharing.
  void set_share_scope(std::string scope, bool across_cells = false) {
    share_scope_ = std::move(scope);
    share_across_cells_ = across_cells;
  }
  // Prefixed to error messages: the spec location being compiled (file:pointer).
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  const Shape& shape(ValueId v) const { return graph_.value(v).shape; }
  Graph& graph() { return graph_; }

 private:
  ValueId add_value(Value v);
  std::vector<ValueId> share(Node& n);
  Graph& graph_;
  CandidateId candidate_;
  std::string share_scope_;
  bool share_across_cells_ = false;
  std::map<std::tuple<int, int32_t, std::string>, NodeId> shared_;  // (op, input, scope)
  std::string context_;
};

// Common blocks built from primitive ops (used by candidate ops and by the network
// skeleton). `name` is both the label and the parameter-name prefix.
struct BnOptions {
  bool affine = true;
};
ValueId batch_norm(Builder& b, ValueId x, const std::string& name, BnOptions options);
ValueId conv(Builder& b, ValueId x, int64_t out_channels, int kernel, ConvAttrs attrs,
             const std::string& name);
// ReLU -> conv -> BN, the DARTS/NATS "ReLUConvBN".
// `bn_name`: the closing BN's label and parameter prefix ("" : name + ".bn").
ValueId relu_conv_bn(Builder& b, ValueId x, int64_t out_channels, int kernel, int stride,
                     int padding, bool affine, const std::string& name,
                     const std::string& bn_name = "");
// ReLU, two 1x1 stride-2 convs of C/2 on x and on x shifted by one pixel, concat, BN
// (built as stride-1 convs on the even and the odd pixels: builder.cpp).
ValueId factorized_reduce(Builder& b, ValueId x, int64_t out_channels, bool affine,
                          const std::string& name, const std::string& bn_name = "");

}  // namespace cellgraph::ir
