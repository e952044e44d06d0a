// A recurrent language model (spec "input": [T]) compiled by unrolling its one recurrent cell
// over the T time steps into a static graph (docs/architecture.md, "Recurrent networks").
//
// Per time step t (labels "t{t}/..."): x_t = the embedding of token t, then the input and x
// dropouts; [c0, h0] = [x_t, h_{t-1}] W0; s0 = highway(h_{t-1}, c0, tanh(h0)); node i has
// one matrix W_i shared by its predecessors j: [c, h] = s_j W_i, and each op f on the edge
// gives highway(s_j, c, f(h)); a node sums its edges; h_t = the mean of the output nodes.
// Then the output dropout, and one decoder product over all steps: [1, T, H] times the
// embedding matrix (tied) plus a bias gives the logits [1, T, V].
//
// Every copy of the cell reads the same parameters and, in a search cell, the same
// candidates (CandidateId) and architecture rows: a candidate is one candidate in all T
// copies, so the plan, autodiff and every algorithm work on the unrolled graph unchanged.
//
// As in DARTS' RNN code (quark0/darts rnn/model_search.py, model.py): the hidden dropout
// masks the state only where it enters a matrix product (the highway's s term reads the
// unmasked state); the search cell normalises s0 and every node with one batch norm without
// affine parameters, its running statistics shared by all of them (DARTS has one BN module
// per cell); a fixed cell has no BN; softmax runs over each edge row (the `none` column
// included, though `none` is never computed). Variational dropouts draw one mask per
// sequence (DropoutAttrs::mask_key), the embedding dropout one per step of training.
#include "spec/compile_recurrent.h"

#include <limits>
#include <map>

#include "engine/error.h"
#include "spec/builder.h"

namespace cellgraph::spec {

namespace {
using ir::ArchGroupId;
using ir::Builder;
using ir::CandidateId;
using ir::ValueId;

// DARTS' initial range U(-0.04, 0.04) of every RNN weight and the embedding, as a
// fan_in_uniform with 1 / sqrt(625) = 0.04.
constexpr int64_t kInitFanIn = 625;

// The variational dropouts' mask keys (DropoutAttrs::mask_key): one mask each per step.
enum class MaskKey : int32_t { input = 1, x = 2, hidden = 3, output = 4 };

bool is_search_cell(const Cell& cell) {
  for (const Node& n : cell.nodes)
    for (const Edge& e : n.edges)
      if (e.ops.size() > 1) return true;
  return false;
}

class RecurrentCompiler {
 public:
  RecurrentCompiler(const Space& space, const CompileOptions& options)
      : space_(space), net_(space.network), b_(graph_) {
    if (options.auxiliary_head)
      throw error(space.file, ":", net_.pointer,
                  ": the auxiliary head reads a reduction cell; a recurrent language model "
                  "has none");
    CG_ASSERT(net_.body.size() == 1, "the validator lets a language model have one stage");
    stage_ = &net_.body[0];
    cell_ = space.find_cell(stage_->cell);
    CG_ASSERT(cell_ != nullptr && cell_->kind == CellForm::recurrent, "validated recurrent cell");
    search_ = is_search_cell(*cell_);
    h_ = stage_->channels;
    if (net_.dropout) dropout_ = *net_.dropout;
  }

  ir::Graph run() {
    const int64_t t_steps = net_.sequence_length, vocabulary = net_.classes;
    at(net_.pointer);
    graph_.input = b_.input({1, t_steps});
    graph_.state_in = b_.state({1, h_});
    declare_arch_groups();
    b_.set_share_scope("encoder");
    const ValueId embedding =
        b_.parameter("encoder.weight", {vocabulary, h_}, ir::Init::fan_in_uniform, kInitFanIn);
    ValueId lookup_weight = embedding;
    if (dropout_.embedding > 0)
      lookup_weight =
          b_.op1(OpKind::dropout, DropoutAttrs{.p = float(dropout_.embedding), .rows = true},
                 {embedding}, "encoder.embedding_dropout");
    const ValueId embedded =
        b_.op1(OpKind::embedding, NoAttrs{}, {lookup_weight, graph_.input}, "encoder.lookup");
    declare_cell_parameters();

    ValueId h = graph_.state_in;
    std::vector<ValueId> outputs;
    for (int64_t t = 0; t < t_steps; ++t) {
      prefix_ = "t" + std::to_string(t) + "/";
      b_.set_share_scope(prefix_);
      constexpr int64_t kOpen = std::numeric_limits<int64_t>::max();
      ValueId x = b_.op1(OpKind::slice, SliceAttrs{{0, t, 0}, {kOpen, t + 1, kOpen}, {1, 1, 1}},
                         {embedded}, prefix_ + "x");
      x = b_.op1(OpKind::flatten, NoAttrs{}, {x}, prefix_ + "x.flatten");
      x = dropout(x, dropout_.input, MaskKey::input, prefix_ + "x.input_dropout");
      h = time_step(x, h);
      ValueId out = dropout(h, dropout_.output, MaskKey::output, prefix_ + "output_dropout");
      outputs.push_back(
          b_.op1(OpKind::reshape, ReshapeAttrs{Shape{1, 1, h_}, true}, {out}, prefix_ + "output"));
    }
    graph_.state_out = h;
    prefix_.clear();
    b_.set_share_scope("decoder");
    at(net_.head[0].pointer);
    const ValueId sequence =
        outputs.size() == 1 ? outputs[0]
                            : b_.op1(OpKind::concat, ConcatAttrs{}, outputs, "decoder.sequence");
    const ValueId bias = b_.parameter("decoder.bias", {vocabulary}, ir::Init::zeros);
    graph_.logits =
        b_.op1(OpKind::linear, NoAttrs{}, {sequence, embedding, bias}, "decoder.linear");
    return std::move(graph_);
  }

 private:
  void at(const std::string& pointer) { b_.set_context(space_.file + ":" + pointer); }

  ValueId dropout(ValueId x, double p, MaskKey key, const std::string& label) {
    if (p <= 0) return x;
    return b_.op1(OpKind::dropout, DropoutAttrs{.p = float(p), .mask_key = int32_t(key)}, {x},
                  label);
  }

  // W0, one W_i per node and (search cells) the BN's running statistics: created once,
  // read by every time step.
  void declare_cell_parameters() {
    b_.set_share_scope(cell_name());
    w0_ = b_.parameter(cell_name() + ".w0", {2 * h_, 2 * h_}, ir::Init::fan_in_uniform, kInitFanIn);
    for (const Node& node : cell_->nodes)
      node_weight_[node.name] = b_.parameter(cell_name() + "." + node.name + ".weight",
                                             {2 * h_, h_}, ir::Init::fan_in_uniform, kInitFanIn);
    if (search_) {
      bn_mean_ = b_.buffer(cell_name() + ".bn.running_mean", {h_}, ir::Init::zeros);
      bn_var_ = b_.buffer(cell_name() + ".bn.running_var", {h_}, ir::Init::ones);
    }
    mean_scale_ =
        b_.scalar(cell_name() + ".mean", 1.0 / double(cell_->output.concat.size()), false);
  }

  std::string cell_name() const { return "cells.0"; }

  ValueId normalised(ValueId s, const std::string& label) {
    if (!search_) return s;
    return b_.op1(OpKind::batch_norm, BatchNormAttrs{},
                  {s, ValueId{}, ValueId{}, bn_mean_, bn_var_}, label);
  }

  // The state as a matrix product reads it: with the hidden dropout (one mask per key).
  ValueId masked(const std::string& name, ValueId s) {
    auto [it, fresh] = masked_.try_emplace(name);
    if (fresh)
      it->second = dropout(s, dropout_.hidden, MaskKey::hidden, prefix_ + name + ".dropout");
    return it->second;
  }

  // [c, h] = s W (W: [2H, H_in] as a linear weight), split in halves.
  std::pair<ValueId, ValueId> gate_and_candidate(ValueId s, ValueId w, const std::string& label) {
    const ValueId ch = b_.op1(OpKind::linear, NoAttrs{}, {s, w, ValueId{}}, label + ".linear");
    const std::vector<ValueId> halves =
        b_.op(OpKind::split, SplitAttrs{{h_, h_}}, {ch}, label + ".split");
    return {halves[0], halves[1]};
  }

  // One copy of the cell: x_t [1, H], h_{t-1} [1, H] -> h_t [1, H].
  ValueId time_step(ValueId x, ValueId h_prev) {
    masked_.clear();
    at(cell_->pointer);
    const std::string base = prefix_ + cell_name();
    const ValueId xm = dropout(x, dropout_.x, MaskKey::x, base + ".x_dropout");
    const ValueId hm = masked("h_prev", h_prev);
    const ValueId xh = b_.op1(OpKind::concat, ConcatAttrs{}, {xm, hm}, base + ".xh");
    const auto [c0, h0] = gate_and_candidate(xh, w0_, base + ".s0");
    const ValueId t0 = b_.op1(OpKind::tanh, NoAttrs{}, {h0}, base + ".s0.tanh");
    std::map<std::string, ValueId> states;
    states[cell_->inputs[0]] =
        normalised(b_.op1(OpKind::highway, NoAttrs{}, {h_prev, c0, t0}, base + ".s0.highway"),
                   base + ".s0.bn");
    int mixed_row = 0;
    for (const Node& node : cell_->nodes) {
      std::vector<ValueId> terms;
      for (size_t e = 0; e < node.edges.size(); ++e) {
        const Edge& edge = node.edges[e];
        at(edge.pointer);
        const std::string label = base + "." + node.name + ".e" + std::to_string(e);
        const ValueId s = states.at(edge.from);
        // One product per edge, shared by its candidates: it runs when any of them runs.
        const auto [c, h] =
            gate_and_candidate(masked(edge.from, s), node_weight_.at(node.name), label);
        if (edge.ops.size() == 1) {
          terms.push_back(term(candidate_of(edge.ops[0]), s, c, h, label + "." + edge.ops[0]));
          continue;
        }
        terms.push_back(mixed_edge(node, e, s, c, h, mixed_row++, label));
      }
      at(node.pointer);
      const std::string label = base + "." + node.name;
      ValueId sum = terms[0];
      if (terms.size() > 1) {
        b_.op1(OpKind::add_n, NoAttrs{}, terms, label + ".sum");
        ir::Node& n = graph_.nodes.back();
        n.drops_absent_inputs = true;
        n.input_candidates.assign(terms.size(), CandidateId{});
        sum = n.outputs[0];
      }
      states[node.name] = normalised(sum, label + ".bn");
    }
    at(cell_->output.pointer);
    std::vector<ValueId> outs;
    for (const std::string& name : cell_->output.concat) outs.push_back(states.at(name));
    ValueId total = outs[0];
    if (outs.size() > 1) {
      b_.op1(OpKind::add_n, NoAttrs{}, outs, base + ".output.sum");
      ir::Node& n = graph_.nodes.back();
      n.drops_absent_inputs = true;
      n.input_candidates.assign(outs.size(), CandidateId{});
      total = n.outputs[0];
    }
    return b_.op1(OpKind::scale, NoAttrs{}, {total, mean_scale_}, base + ".output.mean");
  }

  // highway(s, c, f(h)) for one op; `none` gives a zero node the plan never runs.
  ValueId term(Candidate op, ValueId s, ValueId c, ValueId h, const std::string& label) {
    switch (op) {
      case Candidate::rnn_none:
        return b_.op1(OpKind::zero, ZeroAttrs{}, {s}, label);
      case Candidate::rnn_identity:
        break;
      case Candidate::rnn_tanh:
        h = b_.op1(OpKind::tanh, NoAttrs{}, {h}, label + ".tanh");
        break;
      case Candidate::rnn_relu:
        h = b_.op1(OpKind::relu, NoAttrs{}, {h}, label + ".relu");
        break;
      case Candidate::rnn_sigmoid:
        h = b_.op1(OpKind::sigmoid, NoAttrs{}, {h}, label + ".sigmoid");
        break;
      default:
        throw error(b_.context(), ": ", label, ": op '", candidate_ops()[size_t(op)].name,
                    "' is not a recurrent op");
    }
    return b_.op1(OpKind::highway, NoAttrs{}, {s, c, h}, label + ".highway");
  }

  Candidate candidate_of(const std::string& op) {
    const CandidateInfo* info = find_candidate(op, CellForm::recurrent);
    if (info == nullptr) throw error(b_.context(), ": unknown recurrent op '", op, "'");
    return info->id;
  }

  // The edge's candidates weighted by its softmax row. Time step 0 creates the candidates;
  // later steps build their copies under the same ids.
  ValueId mixed_edge(const Node& node, size_t e, ValueId s, ValueId c, ValueId h, int mixed_row,
                     const std::string& label) {
    const Edge& edge = node.edges[e];
    const EdgeRow& row = rows_.at(mixed_row);
    const bool first = ids_.size() <= size_t(mixed_row);
    if (first) ids_.emplace_back();
    std::vector<CandidateId>& ids = ids_[size_t(mixed_row)];
    std::vector<ValueId> outs;
    std::vector<int32_t> columns;
    for (size_t k = 0; k < edge.ops.size(); ++k) {
      const Candidate op = candidate_of(edge.ops[k]);
      if (first) {
        ids.push_back(CandidateId{int32_t(graph_.candidates.size())});
        graph_.candidates.push_back(ir::Candidate{
            .op = op,
            .arch = row.group,
            .row = row.row,
            .column = int32_t(k),
            .cell = 0,
            .label = cell_name() + "." + node.name + ".e" + std::to_string(e) + "." + edge.ops[k]});
      }
      b_.set_candidate(ids[k]);
      const ValueId out = term(op, s, c, h, label + "." + edge.ops[k]);
      b_.set_candidate(CandidateId{});
      if (first) graph_.candidates[ids[k].index()].output = out;
      outs.push_back(out);
      columns.push_back(int32_t(k));
    }
    std::vector<ValueId> inputs = outs;
    inputs.push_back(coefficients_.at(row.group.value));
    b_.op1(OpKind::weighted_sum, WeightedSumAttrs{row.row, columns}, inputs, label + ".mix");
    ir::Node& n = graph_.nodes.back();
    n.drops_absent_inputs = true;
    n.input_candidates = ids;
    if (first)
      graph_.mixed_edges.push_back(ir::MixedEdge{.instance = 0,
                                                 .cell = cell_->name,
                                                 .node = node.name,
                                                 .edge = int32_t(e),
                                                 .arch = row.group,
                                                 .row = row.row});
    return n.outputs[0];
  }

  // One architecture group per op list of the cell (the DARTS RNN space has one: 36 rows of
  // 5 ops), one row per mixed edge in node order; every time step reads the same rows.
  void declare_arch_groups() {
    std::map<std::string, ArchGroupId> group_of_ops;
    for (const Node& node : cell_->nodes)
      for (size_t e = 0; e < node.edges.size(); ++e) {
        const Edge& edge = node.edges[e];
        if (edge.ops.size() < 2) continue;
        std::string key;
        for (const std::string& op : edge.ops) key += op + ",";
        auto [it, fresh] = group_of_ops.try_emplace(key);
        if (fresh) {
          std::string name = cell_->name;
          if (group_of_ops.size() > 1)
            name += "." + (edge.op_set.empty() ? "ops" + std::to_string(group_of_ops.size())
                                               : edge.op_set);
          graph_.arch_groups.push_back(
              ir::ArchGroup{.name = name, .cell = cell_->name, .columns = edge.ops});
          it->second = ArchGroupId{int32_t(graph_.arch_groups.size() - 1)};
        }
        ir::ArchGroup& g = graph_.arch_groups[it->second.index()];
        rows_.push_back(EdgeRow{it->second, g.rows++});
        g.row_labels.push_back(node.name + "/e" + std::to_string(e) + "<-" + edge.from);
        std::vector<double> init(edge.ops.size(), std::numeric_limits<double>::quiet_NaN());
        int32_t hot = -1;
        for (size_t k = 0; k < edge.ops.size(); ++k) {
          if (auto v = edge.init.find(edge.ops[k]); v != edge.init.end()) init[k] = v->second;
          if (edge.ops[k] == edge.init_one_hot) hot = int32_t(k);
        }
        if (hot >= 0) {
          std::fill(init.begin(), init.end(), 0.0);
          init[size_t(hot)] = ir::one_hot_logit(edge.ops.size());
        }
        g.init.push_back(std::move(init));
        g.one_hot.push_back(hot);
      }
    for (size_t g = 0; g < graph_.arch_groups.size(); ++g)
      coefficients_[int32_t(g)] = b_.coefficients(ArchGroupId{int32_t(g)});
  }

  struct EdgeRow {
    ArchGroupId group;
    int32_t row = 0;
  };

  const Space& space_;
  const Network& net_;
  ir::Graph graph_;
  Builder b_;
  const Stage* stage_ = nullptr;
  const Cell* cell_ = nullptr;
  bool search_ = false;
  int64_t h_ = 0;
  RecurrentDropout dropout_;
  std::string prefix_;  // "t3/" while building time step 3
  ValueId w0_, bn_mean_, bn_var_, mean_scale_;
  std::map<std::string, ValueId> node_weight_;
  std::map<std::string, ValueId> masked_;      // per state name, in the current time step
  std::vector<EdgeRow> rows_;                  // per mixed edge of the cell, in order
  std::vector<std::vector<CandidateId>> ids_;  // per mixed edge: its candidates
  std::map<int32_t, ValueId> coefficients_;    // per architecture group
};
}  // namespace

ir::Graph compile_language_model(const Space& space, const CompileOptions& options) {
  return RecurrentCompiler(space, options).run();
}

}  // namespace cellgraph::spec
