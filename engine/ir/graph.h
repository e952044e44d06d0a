// The IR: a network as a DAG of primitive op nodes over values, built once from a spec
// (spec/compile.cpp) and executed every step by the scheduler. The graph owns its nodes,
// values, parameters and candidates in vectors and refers to them by integer ids, so
// copying a graph is cheap and ids stay valid.
//
// Shapes are per sample: the batch extent is 1 in the IR and the real batch at run time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor/shape.h"
#include "ops/attrs.h"
#include "ops/candidates.h"
#include "ops/op_list.h"

namespace cellgraph::ir {

// Strongly typed indices into the graph's vectors; -1 is "none".
template <typename Tag>
struct Id {
  int32_t value = -1;
  bool valid() const { return value >= 0; }
  size_t index() const { return static_cast<size_t>(value); }
  auto operator<=>(const Id&) const = default;
};
using NodeId = Id<struct NodeTag>;
using ValueId = Id<struct ValueTag>;
using ParamId = Id<struct ParamTag>;
using CandidateId = Id<struct CandidateTag>;
using ArchGroupId = Id<struct ArchGroupTag>;

enum class ValueKind {
  input,        // the network input images
  activation,   // produced by a node
  parameter,    // a trained weight (ParamId)
  buffer,       // BN running statistics: state, never a gradient (ParamId)
  coefficient,  // an architecture-weight matrix bound at run time (ArchGroupId)
  // A recurrent network's hidden state carried in from the previous batch
  // (graph.state_in), bound at run time (sched::RunOptions::state; zeros when not given).
  state,
};

struct Value {
  Shape shape;  // per sample (batch extent 1) for activations
  ValueKind kind = ValueKind::activation;
  NodeId producer;   // activations
  ParamId param;     // parameters and buffers
  ArchGroupId arch;  // coefficients
};

struct Node {
  OpKind op{};
  Attrs attrs;
  std::vector<ValueId> inputs;  // an invalid id is an absent optional input
  std::vector<ValueId> outputs;
  // Nodes of one candidate op run only while that candidate is active.
  CandidateId candidate;
  // weighted_sum over candidates or edges: inputs whose value is absent (a skipped
  // candidate) are dropped at run time together with their coefficient column.
  bool drops_absent_inputs = false;
  // With drops_absent_inputs: the candidate behind each summed input (the coefficient
  // matrix, weighted_sum's last input, has none). An inactive candidate's input is
  // dropped even when its value exists (skip_connect's output is its input).
  std::vector<CandidateId> input_candidates;
  // A node shared by readers of different candidates (spec/builder.h) belongs to none; like a
  // candidate node it is skipped, its output absent, when its input is absent.
  bool absent_with_input = false;
  // A search network's preprocessing ReLU shared by the cells reading one value
  // (spec/compile.cpp): how many cells' preprocessings it serves. The latency table times
  // it that many times, as the derived network, which shares nothing across cells, runs it.
  int32_t cells_sharing = 1;
  std::string label;  // "cell3/n1/e0/sep_conv_3x3/dw1": for errors, info and export
  // Part of the training-only auxiliary head (DARTS): not counted by macs().
  bool auxiliary = false;
};

enum class Init { kaiming_uniform, fan_in_uniform, ones, zeros, constant };

struct Parameter {
  std::string name;  // unique, '.'-separated path: "cells.3.n1.e0.sep_conv_3x3.dw1.weight"
  Shape shape;
  Init init = Init::kaiming_uniform;
  int64_t fan_in = 1;  // for fan_in_uniform (linear bias): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  bool is_buffer = false;
  CandidateId candidate;  // owning candidate, if any (sparse algorithms count these)
  ValueId value;
  bool auxiliary = false;  // of the training-only auxiliary head: not in weight_count()
  double init_value = 0;   // Init::constant: every element starts here (an edge coefficient)
};

// One candidate op on one mixed edge of one cell instance.
struct Candidate {
  cellgraph::Candidate op{};
  ArchGroupId arch;    // the coefficient matrix that weighs it
  int32_t row = 0;     // the edge's row in that matrix
  int32_t column = 0;  // the op's column
  int32_t cell = 0;    // cell instance index
  ValueId output;
  std::string label;
};

// Architecture parameters of one kind: a [rows, columns] matrix of logits. For edge
// groups a row is an edge of a cell type (shared by every instance of that type) and the
// columns are its candidate ops; for path groups (AGD) a row is a node and the columns
// are its incoming edges; a channel-score group (a width search, RARTS) is one row that
// scales each output channel of one block's inner conv, read as it is (no softmax).
struct ArchGroup {
  enum class Kind { edge_ops, edge_paths, channel_scores };
  std::string name;  // "normal", "reduce", "normal.n2.paths"
  Kind kind = Kind::edge_ops;
  std::string cell;  // the cell type ("" for channel scores)
  int32_t rows = 0;
  std::vector<std::string> columns;       // op names (edge_ops) or edge labels (edge_paths)
  std::vector<std::string> row_labels;    // "n1/e0 <- c_k-1"
  std::vector<std::vector<double>> init;  // per row: logit initial values, NaN = random
  // Per row: the column whose coefficient starts one-hot (spec edge `init_one_hot`), or -1.
  // Such a row's logits are one_hot_logit(columns) there and 0 elsewhere, which softmax
  // turns into kOneHotWeight (NASP's box clips them to exactly 1 and 0); relaxations that
  // do not read logits (ISTA-NAS' codes) start from this column instead.
  std::vector<int32_t> one_hot;
};

// The softmax weight a one-hot row starts with: not exactly 1, since a row at an exact
// one-hot softmax has zero gradient and the search could never move it.
inline constexpr double kOneHotWeight = 0.99;
// ln(kOneHotWeight (n - 1) / (1 - kOneHotWeight)): the logit that, with the row's n - 1
// other logits at 0, gives softmax weight kOneHotWeight (6.675 for DARTS' 8 ops + 1).
double one_hot_logit(size_t columns);

// Where a mixed edge of the spec landed: derivation reads the architecture weights of a
// spec edge through this table.
struct MixedEdge {
  int32_t instance = 0;  // cell instance (stage order)
  std::string cell;      // cell type
  std::string node;
  int32_t edge = 0;  // index among the node's edges
  ArchGroupId arch;
  int32_t row = 0;
};

class Graph {
 public:
  std::vector<Node> nodes;  // in a valid execution (topological) order
  std::vector<Value> values;
  std::vector<Parameter> params;
  std::vector<Candidate> candidates;
  std::vector<ArchGroup> arch_groups;
  std::vector<MixedEdge> mixed_edges;
  ValueId input;   // [1, C, H, W]; a language model's token ids [1, T]
  ValueId logits;  // [1, classes]; a language model's [1, T, vocabulary]
  // The auxiliary head's logits [1, classes] (spec::CompileOptions::auxiliary_head), or
  // invalid. Its nodes and parameters come after all others and are marked `auxiliary`;
  // a plan keeps them while this is valid (reset it on a copy to plan without them).
  ValueId aux_logits;
  // Recurrent networks (a language model unrolled over T time steps): the hidden state
  // [1, H] read by the first step (a ValueKind::state value) and the one the last step
  // leaves (an activation, kept live by every plan), to carry into the next batch.
  // Invalid in other networks.
  ValueId state_in, state_out;

  const Node& node(NodeId id) const { return nodes[id.index()]; }
  const Value& value(ValueId id) const { return values[id.index()]; }
  const Parameter& param(ParamId id) const { return params[id.index()]; }
  const Candidate& candidate(CandidateId id) const { return candidates[id.index()]; }
  const ArchGroup& arch_group(ArchGroupId id) const { return arch_groups[id.index()]; }

  // Trained weights of the network (buffers, arch params and the auxiliary head excluded).
  int64_t weight_count() const;
  int64_t auxiliary_weight_count() const;  // the auxiliary head's trained weights
  // Multiply-accumulates of one forward pass of one sample with every candidate active
  // (convolutions and linear layers; the auxiliary head excluded).
  int64_t macs() const;
  // Bytes of every activation value for one sample (float32): what a training step would
  // hold if nothing were freed before backward. Memory estimates scale it by the batch.
  int64_t activation_bytes_per_sample() const;

  // Internal consistency (ids in range, topological order, shapes agree with the op
  // schemas); CG_ASSERTs on failure. Called after compilation in debug builds and tests.
  void verify() const;
};

}  // namespace cellgraph::ir
