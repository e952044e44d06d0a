#include "spec/compile.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "engine/error.h"
#include "spec/builder.h"
#include "spec/candidate_build.h"
#include "spec/compile_recurrent.h"
#include "spec/fold_concat_relu.h"
#include "spec/fold_conv_relu.h"

namespace cellgraph::spec {

namespace {
using ir::ArchGroupId;
using ir::Builder;
using ir::CandidateId;
using ir::ValueId;

bool is_search_cell(const Cell& cell) {
  for (const Node& n : cell.nodes)
    for (const Edge& e : n.edges)
      if (e.ops.size() > 1) return true;
  return false;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

class Compiler {
 public:
  Compiler(const Space& space, const CompileOptions& options)
      : space_(space), options_(options), b_(graph_) {}

  ir::Graph run() {
    if (const std::optional<Unsupported> u = unsupported_by_compile(space_))
      throw error(space_.file, ":", u->pointer, ": ", u->what);
    const Network& net = space_.network;
    graph_.input = b_.input({1, net.in_channels, net.in_height, net.in_width});
    declare_arch_groups();
    ValueId x = graph_.input;
    b_.set_share_scope("stem");
    for (size_t i = 0; i < net.stem.size(); ++i)
      x = layer(net.stem[i], x, "stem." + std::to_string(i));
    prev_prev_ = prev_ = x;
    for (const Stage& stage : net.body)
      for (int r = 0; r < stage.repeat; ++r) this->stage(stage, r);
    x = prev_;
    b_.set_share_scope("head");
    for (size_t i = 0; i < net.head.size(); ++i)
      x = layer(net.head[i], x, "head." + std::to_string(i));
    graph_.logits = x;
    if (options_.auxiliary_head) auxiliary_head();
    return std::move(graph_);
  }

 private:
  // Errors start with "FILE:POINTER: " naming the spec element being built (a layer, a
  // stage, a cell's edge or node), as the validator's do; errors inside a cell instance
  // add which instance at the end (stage()).
  void at(const std::string& pointer) { b_.set_context(space_.file + ":" + pointer); }

  // Creates every architecture group and row before any node is built, so that each
  // coefficient matrix has its final shape when the first mixed edge reads it.
  void declare_arch_groups() {
    const int saved = index_;
    for (const Stage& stage : space_.network.body) {
      for (int r = 0; r < stage.repeat; ++r) {
        ++index_;
        if (stage.width_search) channel_group("cells." + std::to_string(index_ - 1), stage.inner());
        const Cell* cell = stage.cell.empty() ? nullptr : space_.find_cell(stage.cell);
        if (cell == nullptr) continue;
        int mixed_row = 0;
        for (const Node& node : cell->nodes) {
          for (size_t e = 0; e < node.edges.size(); ++e)
            if (node.edges[e].ops.size() > 1)
              edge_group(*cell, node.edges[e], mixed_row++, row_label(node, e));
          if (node.path_weights && node.edges.size() > 1) path_group(*cell, node);
        }
      }
    }
    index_ = saved;
  }

  static std::string row_label(const Node& node, size_t e) {
    return node.name + "/e" + std::to_string(e) + "<-" + node.edges[e].from;
  }

  ValueId layer(const Layer& l, ValueId x, const std::string& name) {
    at(l.pointer);
    if (l.op == "conv_3x3" || l.op == "conv_1x1") {
      const int k = l.op == "conv_3x3" ? 3 : 1;
      return ir::conv(b_, x, l.channels, k, ConvAttrs{.stride = l.stride, .padding = k / 2},
                      name + ".conv");
    }
    if (l.op == "batch_norm") return ir::batch_norm(b_, x, name + ".bn", {l.affine});
    if (l.op == "relu") return b_.op1(OpKind::relu, NoAttrs{}, {x}, name + ".relu");
    if (l.op == "global_avg_pool") {
      const ValueId p = b_.op1(OpKind::global_avg_pool, NoAttrs{}, {x}, name + ".pool");
      return b_.op1(OpKind::flatten, NoAttrs{}, {p}, name + ".flatten");
    }
    if (l.op == "linear") {
      if (b_.shape(x).rank() != 2) x = b_.op1(OpKind::flatten, NoAttrs{}, {x}, name + ".flatten");
      const int64_t in = b_.shape(x)[1];
      const ValueId w =
          b_.parameter(name + ".weight", {space_.network.classes, in}, ir::Init::kaiming_uniform);
      const ValueId bias =
          b_.parameter(name + ".bias", {space_.network.classes}, ir::Init::fan_in_uniform, in);
      return b_.op1(OpKind::linear, NoAttrs{}, {x, w, bias}, name + ".linear");
    }
    throw error(b_.context(), ": unknown layer op '", l.op, "'");
  }

  void stage(const Stage& s, int repeat) {
    const std::string name = "cells." + std::to_string(index_++);
    b_.set_share_scope(name);
    at(s.pointer);
    if (!s.block.empty()) {
      // Only the first block of a stage strides (docs/spec.md, Stage).
      const int stride = repeat == 0 ? s.stride : 1;
      const ValueId in = prev_;
      ValueId out;
      if (s.block == "residual")
        out = residual_block(in, s.channels, s.inner(), stride, name);
      else if (s.block == "basic")
        out = basic_block(in, s.channels, s.inner(), stride, name);
      else
        out = heavy_ball_block(in, momentum_source_, s, stride, name);
      prev_prev_ = prev_ = out;  // both inputs of a cell that follows
      momentum_source_ = s.block == "heavy_ball" ? in : ValueId{};
      prev_reduction_ = false;
      return;
    }
    momentum_source_ = ValueId{};
    const Cell* cell = space_.find_cell(s.cell);
    if (cell == nullptr) throw error(b_.context(), ": unknown cell '", s.cell, "'");
    ValueId out;
    try {
      out = cell_instance(*cell, s.channels, name);
    } catch (const Error& e) {
      // The pointer names the cell definition, shared by every instance: say which one.
      throw error(e.what(), " (in ", name, ", ",
                  s.repeat == 1
                      ? "the cell"
                      : "repeat " + std::to_string(repeat + 1) + " of " + std::to_string(s.repeat),
                  " at ", s.pointer, ")");
    }
    prev_prev_ = prev_;
    prev_ = out;
    prev_reduction_ = cell->reduction;
    if (cell->reduction && ++reductions_ == 2) aux_input_ = out;
  }

  // Built last, so that the network's parameters (and their seeded initial values) are
  // the same with and without it; reads the output of the second reduction cell.
  void auxiliary_head() {
    b_.set_context(space_.file + ":" + space_.network.pointer);
    b_.set_share_scope("auxiliary");
    if (!aux_input_.valid())
      throw error(b_.context(),
                  ": the auxiliary head reads the output of the second reduction "
                  "cell; the network has ",
                  reductions_, " reduction cell", reductions_ == 1 ? "" : "s");
    const size_t first_node = graph_.nodes.size(), first_param = graph_.params.size();
    const Shape& in = b_.shape(aux_input_);
    PoolAttrs pool;
    try {
      pool = aux_pool_attrs(in[2], in[3]);
    } catch (const Error& e) {
      throw error(b_.context(), ": auxiliary head on the output of the second reduction cell (",
                  in[1], " x ", in[2], " x ", in[3], "): ", e.what());
    }
    const std::string name = "auxiliary";
    ValueId x = b_.op1(OpKind::relu, NoAttrs{}, {aux_input_}, name + ".relu");
    x = b_.op1(OpKind::avg_pool, pool, {x}, name + ".pool");
    x = ir::conv(b_, x, 128, 1, ConvAttrs{}, name + ".conv1");
    x = ir::batch_norm(b_, x, name + ".bn1", {true});
    x = b_.op1(OpKind::relu, NoAttrs{}, {x}, name + ".relu1");
    x = ir::conv(b_, x, 768, 2, ConvAttrs{}, name + ".conv2");
    x = ir::batch_norm(b_, x, name + ".bn2", {true});
    x = b_.op1(OpKind::relu, NoAttrs{}, {x}, name + ".relu2");
    x = b_.op1(OpKind::flatten, NoAttrs{}, {x}, name + ".flatten");
    const int64_t features = b_.shape(x)[1];
    const ValueId w = b_.parameter(name + ".linear.weight", {space_.network.classes, features},
                                   ir::Init::kaiming_uniform);
    const ValueId bias = b_.parameter(name + ".linear.bias", {space_.network.classes},
                                      ir::Init::fan_in_uniform, features);
    graph_.aux_logits = b_.op1(OpKind::linear, NoAttrs{}, {x, w, bias}, name + ".linear");
    for (size_t i = first_node; i < graph_.nodes.size(); ++i) graph_.nodes[i].auxiliary = true;
    for (size_t i = first_param; i < graph_.params.size(); ++i) graph_.params[i].auxiliary = true;
  }

  // DARTS drop-path: after every op of a fixed edge except the identity.
  ValueId maybe_drop_path(ValueId in, ValueId out, const std::string& name) {
    if (!options_.drop_path || out == in) return out;
    return b_.op1(OpKind::drop_path, DropPathAttrs{}, {out}, name + ".drop_path");
  }

  // NATS-Bench's ResNet basic block; its inner width (conv_a's output) may differ from c.
  // Under a width search each inner channel is scaled by its score after conv_a's BN
  // (before it, a BN on batch statistics would cancel the scale).
  ValueId residual_block(ValueId x, int64_t c, int64_t inner, int stride, const std::string& name) {
    const ValueId a =
        width_scores(ir::relu_conv_bn(b_, x, inner, 3, stride, 1, true, name + ".conv_a"), name);
    const ValueId bb = ir::relu_conv_bn(b_, a, c, 3, 1, 1, true, name + ".conv_b");
    ValueId shortcut = x;
    if (stride == 2 && (b_.shape(x)[2] % 2 != 0 || b_.shape(x)[3] % 2 != 0))
      throw error(b_.context(), ": ", name, ": a stride-2 residual block cannot halve a ",
                  b_.shape(x)[2], "x", b_.shape(x)[3], " map: its convs (padding 1) give ",
                  b_.shape(a)[2], "x", b_.shape(a)[3], " and its shortcut's 2x2 pooling ",
                  b_.shape(x)[2] / 2, "x", b_.shape(x)[3] / 2,
                  "; expected even sides here (change network.input or the stride-2 steps "
                  "before this block)");
    if (stride == 2) {
      const ValueId p = b_.op1(OpKind::avg_pool, PoolAttrs{.kernel = 2, .stride = 2, .padding = 0},
                               {x}, name + ".down.pool");
      shortcut = ir::conv(b_, p, c, 1, ConvAttrs{}, name + ".down.conv");
    } else if (b_.shape(x)[1] != c) {
      shortcut = ir::relu_conv_bn(b_, x, c, 1, 1, 0, true, name + ".down");
    }
    return b_.op1(OpKind::add, NoAttrs{}, {shortcut, bb}, name + ".add");
  }

  // conv3x3 (stride) - BN - ReLU: one post-activation layer, Phi(W x) of the HB paper.
  // `block`: under a width search, the block whose scores scale the output after the BN
  // (before the ReLU: gamma * BN folds into the BN, and a pruned channel's ReLU gives 0).
  ValueId conv_bn_relu(ValueId x, int64_t c, int stride, const std::string& name,
                       const std::string& block = "") {
    const ValueId y =
        ir::conv(b_, x, c, 3, ConvAttrs{.stride = stride, .padding = 1}, name + ".conv");
    ValueId z = ir::batch_norm(b_, y, name + ".bn", {true});
    if (!block.empty()) z = width_scores(z, block);
    return b_.op1(OpKind::relu, NoAttrs{}, {z}, name + ".relu");
  }

  // Under a width search of `block` (its channel-score group exists), `x` with each channel
  // scaled by its score: a depthwise 1x1 conv whose weight is the group's coefficient row,
  // so the scores get their gradient from the conv kernels; otherwise `x` as it is.
  ValueId width_scores(ValueId x, const std::string& block) {
    const ArchGroupId g = find_group(block + ".width");
    if (!g.valid()) return x;
    const int64_t channels = b_.shape(x)[1];
    const ValueId w = b_.op1(OpKind::reshape, ReshapeAttrs{Shape{channels, 1, 1, 1}},
                             {coefficients(g)}, block + ".width.reshape");
    return b_.op1(OpKind::conv2d, ConvAttrs{.groups = int(channels)}, {x, w, ValueId{}},
                  block + ".width");
  }

  // The ResNet paper's CIFAR shortcut (option A): `x` as it is when it has the block's
  // output shape; otherwise every r-th pixel (r = the size ratio: 2 after a stride-2 block)
  // and zero channels appended up to `c`. Parameter-free.
  ValueId identity_shortcut(ValueId x, int64_t c, const Shape& out, const std::string& name) {
    const Shape& s = b_.shape(x);
    const int64_t rh = (s[2] + out[2] - 1) / out[2], rw = (s[3] + out[3] - 1) / out[3];
    if (rh != rw || (s[2] + rh - 1) / rh != out[2] || (s[3] + rw - 1) / rw != out[3])
      throw error(b_.context(), ": ", name, ": the identity shortcut cannot map a ", s[2], "x",
                  s[3], " map to ", out[2], "x", out[3],
                  "; expected the same size or a whole-number multiple of it");
    if (rh > 1) {
      constexpr int64_t kOpen = std::numeric_limits<int64_t>::max();
      x = b_.op1(OpKind::slice,
                 SliceAttrs{.starts = {0, 0, 0, 0},
                            .ends = {kOpen, kOpen, kOpen, kOpen},
                            .steps = {1, 1, rh, rw}},
                 {x}, name + ".subsample");
    }
    const int64_t have = s[1];
    CG_ASSERT(have <= c, name, ": the validator lets no shortcut drop channels");
    if (have == c) return x;
    std::vector<ValueId> parts{x};
    for (int64_t missing = c - have; missing > 0;) {
      ValueId zeros =
          b_.op1(OpKind::zero, ZeroAttrs{}, {x}, name + ".pad" + std::to_string(parts.size()));
      if (missing < have)
        zeros = b_.op(OpKind::split, SplitAttrs{{missing, have - missing}}, {zeros},
                      name + ".pad_split")[0];
      parts.push_back(zeros);
      missing -= std::min(missing, have);
    }
    return b_.op1(OpKind::concat, ConcatAttrs{}, parts, name + ".pad");
  }

  // The ResNet paper's CIFAR basic block: conv-BN-ReLU, conv-BN, plus the identity shortcut
  // (option A), ReLU. Its inner width (conv_a's output) may differ from c (a width search).
  ValueId basic_block(ValueId x, int64_t c, int64_t inner, int stride, const std::string& name) {
    const ValueId a = conv_bn_relu(x, inner, stride, name + ".conv_a", name);
    ValueId bb = ir::conv(b_, a, c, 3, ConvAttrs{.stride = 1, .padding = 1}, name + ".conv_b.conv");
    bb = ir::batch_norm(b_, bb, name + ".conv_b.bn", {true});
    const ValueId sum =
        b_.op1(OpKind::add, NoAttrs{},
               {bb, identity_shortcut(x, c, b_.shape(bb), name + ".shortcut")}, name + ".add");
    return b_.op1(OpKind::relu, NoAttrs{}, {sum}, name + ".relu");
  }

  // HBNet's block: x_{k+1} = F(x_k) + beta (x_k - x_{k-1}), F two conv-BN-ReLU layers (the
  // first strided), both states brought to the output shape by the identity shortcut.
  // Without a previous heavy_ball block there is no x_{k-1} (the momentum starts at 0).
  ValueId heavy_ball_block(ValueId x, ValueId x_prev, const Stage& s, int stride,
                           const std::string& name) {
    const ValueId a = conv_bn_relu(x, s.inner(), stride, name + ".conv_a", name);
    const ValueId f = conv_bn_relu(a, s.channels, 1, name + ".conv_b");
    if (!x_prev.valid() || s.momentum == 0) return f;
    const Shape& out = b_.shape(f);
    const ValueId now = identity_shortcut(x, s.channels, out, name + ".x");
    const ValueId before = identity_shortcut(x_prev, s.channels, out, name + ".x_prev");
    ValueId step = b_.op1(OpKind::add, NoAttrs{},
                          {now, b_.op1(OpKind::negate, NoAttrs{}, {before}, name + ".negate")},
                          name + ".difference");
    if (s.momentum != 1)
      step = b_.op1(OpKind::scale, NoAttrs{},
                    {step, b_.scalar(name + ".momentum", s.momentum, false)}, name + ".momentum");
    return b_.op1(OpKind::add, NoAttrs{}, {f, step}, name + ".add");
  }

  ValueId cell_instance(const Cell& cell, int64_t c, const std::string& name) {
    const bool search = is_search_cell(cell);
    std::map<std::string, ValueId> states;
    std::map<std::string, bool> is_input;
    // Inputs: c_k-1 is always the last name.
    const std::vector<ValueId> sources = cell.inputs.size() == 2
                                             ? std::vector<ValueId>{prev_prev_, prev_}
                                             : std::vector<ValueId>{prev_};
    for (size_t i = 0; i < cell.inputs.size(); ++i) {
      ValueId v = sources[i];
      const std::string pre = name + ".pre" + std::to_string(i);
      // A fixed cell's preprocessings are scopes of their own: the ONNX cell export cuts a
      // cell out by its labels and tells its two inputs apart by them. A search network is
      // never exported, so there one scope spans every search cell's preprocessing and a
      // cell's output, read by the next two cells, is rectified once instead of twice
      // (a ReLU pass forward and backward and a saved activation per cell; issue 17).
      if (search)
        b_.set_share_scope("search_preprocess", true);
      else
        b_.set_share_scope(pre);
      if (cell.preprocess == "auto") {
        const bool older = cell.inputs.size() == 2 && i == 0;
        if (older && prev_reduction_) {
          require_even_map(b_, v, pre,
                           "the preprocessing of input '" + cell.inputs[i] +
                               "' after a reduction cell (a factorized reduce)");
          v = ir::factorized_reduce(b_, v, c, !search, pre);
        } else {
          v = ir::relu_conv_bn(b_, v, c, 1, 1, 0, !search, pre);
        }
      }
      states[cell.inputs[i]] = v;
      is_input[cell.inputs[i]] = true;
    }
    b_.set_share_scope(name);
    int mixed_row = 0;
    for (const Node& node : cell.nodes) {
      std::vector<ValueId> edge_outputs;
      const bool fuse = search && sums_in_one(node);
      std::vector<MixedTerms> terms;  // with fuse: the edges' candidates, summed at the end
      for (size_t e = 0; e < node.edges.size(); ++e) {
        const Edge& edge = node.edges[e];
        at(edge.pointer);
        CandidateSite site{.channels = c,
                           .stride = cell.reduction && is_input[edge.from] ? 2 : 1,
                           .search = search,
                           .edge_bn = space_.network.edge_bn,
                           .name = name + "." + node.name + ".e" + std::to_string(e)};
        const ValueId in = states.at(edge.from);
        const std::string edge_name = site.name;
        if (edge.ops.size() == 1) {
          site.name += "." + edge.ops[0];
          const ValueId out = edge_op(candidate_of(cell, edge.ops[0]), in, site);
          edge_outputs.push_back(
              scaled(edge, search ? out : maybe_drop_path(in, out, site.name), edge_name));
          continue;
        }
        if (fuse)
          terms.push_back(mixed_candidates(cell, edge, in, site, mixed_row++, row_label(node, e)));
        else
          edge_outputs.push_back(scaled(
              edge, mixed_edge(cell, edge, in, site, mixed_row++, row_label(node, e)), edge_name));
        graph_.mixed_edges.push_back(ir::MixedEdge{.instance = index_ - 1,
                                                   .cell = cell.name,
                                                   .node = node.name,
                                                   .edge = int32_t(e),
                                                   .arch = graph_.candidates.back().arch,
                                                   .row = graph_.candidates.back().row});
      }
      at(node.pointer);
      states[node.name] = fuse ? node_sum(cell, node, terms, name + "." + node.name)
                               : join_edges(cell, node, edge_outputs, name + "." + node.name);
    }
    at(cell.pointer);
    if (cell.output.concat.size() == 1) return states.at(cell.output.concat[0]);
    std::vector<ValueId> parts;
    for (const std::string& n : cell.output.concat) parts.push_back(states.at(n));
    return b_.op1(OpKind::concat, ConcatAttrs{}, parts, name + ".concat");
  }

  // The edge's output times its coefficient (a [1] weight, or a buffer when fixed), if any.
  ValueId scaled(const Edge& edge, ValueId out, const std::string& edge_name) {
    if (!edge.coefficient) return out;
    const ValueId s =
        b_.scalar(edge_name + ".coefficient", edge.coefficient->value, edge.coefficient->trainable);
    return b_.op1(OpKind::scale, NoAttrs{}, {out, s}, edge_name + ".scale");
  }

  // One op on one edge; with network.edge_bn its closing BN is affine ("out_bn"), the one
  // ISTA-NAS one-stage scales by the op's coefficient (none stays a zero).
  ValueId edge_op(Candidate op, ValueId in, const CandidateSite& site) {
    return build_candidate(b_, op, in, site);
  }

  Candidate candidate_of(const Cell& cell, const std::string& op) {
    const CandidateInfo* info = find_candidate(op, cell.kind);
    if (info == nullptr) throw error(b_.context(), ": unknown op '", op, "'");
    return info->id;
  }

  // One mixed edge's candidates before they are summed: their outputs, ids and columns, and
  // the coefficient row and matrix they are weighed by.
  struct MixedTerms {
    int32_t row = 0;
    ValueId coefficients;
    std::vector<CandidateId> ids;
    std::vector<ValueId> outs;
    std::vector<int32_t> columns;
    std::string name;  // the edge's: "cell3.n1.e0"
  };

  // Whether a search cell's node sums its edges' candidates in one weighted sum rather than
  // a weighted sum per edge and an add_n of the edges: both passes read and write every
  // element once more, and a node with several mixed edges and nothing else (no fixed
  // edge, edge coefficient or path weight between the candidates and the sum) can skip
  // them. Each term keeps its edge's row, so the sum and the coefficients' gradients are
  // the same up to float rounding (the terms are added in one sequence instead of two).
  static bool sums_in_one(const Node& node) {
    if (node.path_weights || node.edges.size() < 2) return false;
    for (const Edge& edge : node.edges)
      if (edge.ops.size() < 2 || edge.coefficient) return false;
    return true;
  }

  ValueId mixed_edge(const Cell& cell, const Edge& edge, ValueId in, CandidateSite site, int row,
                     const std::string& row_label) {
    MixedTerms t = mixed_candidates(cell, edge, in, std::move(site), row, row_label);
    return edge_weighted_sum(t);
  }

  // One edge's candidates weighed by its row of the coefficients ("<edge>.mix").
  ValueId edge_weighted_sum(MixedTerms& t) {
    std::vector<ValueId> inputs = t.outs;
    inputs.push_back(t.coefficients);
    b_.op1(OpKind::weighted_sum, WeightedSumAttrs{t.row, t.columns}, inputs, t.name + ".mix");
    ir::Node& n = graph_.nodes.back();
    n.drops_absent_inputs = true;
    n.input_candidates = std::move(t.ids);
    return n.outputs[0];
  }

  // A node's mixed edges summed in one weighted sum (sums_in_one); edges weighed by
  // different matrices (a cell mixing op sets) fall back to a sum per edge and add_n.
  ValueId node_sum(const Cell& cell, const Node& node, std::vector<MixedTerms>& terms,
                   const std::string& name) {
    bool one_matrix = true;
    for (const MixedTerms& t : terms)
      one_matrix = one_matrix && t.coefficients == terms[0].coefficients;
    if (!one_matrix) {
      std::vector<ValueId> edges;
      edges.reserve(terms.size());
      for (MixedTerms& t : terms) edges.push_back(edge_weighted_sum(t));
      return join_edges(cell, node, edges, name);
    }
    WeightedSumAttrs attrs{.row = terms[0].row};
    std::vector<ValueId> inputs;
    std::vector<CandidateId> ids;
    for (const MixedTerms& t : terms) {
      inputs.insert(inputs.end(), t.outs.begin(), t.outs.end());
      ids.insert(ids.end(), t.ids.begin(), t.ids.end());
      attrs.columns.insert(attrs.columns.end(), t.columns.begin(), t.columns.end());
      attrs.rows.insert(attrs.rows.end(), t.outs.size(), t.row);
    }
    inputs.push_back(terms[0].coefficients);
    b_.op1(OpKind::weighted_sum, std::move(attrs), inputs, name + ".sum");
    ir::Node& n = graph_.nodes.back();
    n.drops_absent_inputs = true;
    n.input_candidates = std::move(ids);
    return n.outputs[0];
  }

  MixedTerms mixed_candidates(const Cell& cell, const Edge& edge, ValueId in, CandidateSite site,
                              int row, const std::string& row_label) {
    const ArchGroupId group = edge_group(cell, edge, row, row_label);
    // `row` numbers the cell's mixed edges; the candidates and the weighted sum read the
    // edge's row in its own group, which differs once a cell mixes several op sets.
    const int32_t group_row = row_in_group_;
    const ValueId coef = coefficients(group);
    std::vector<CandidateId> ids;
    std::vector<ValueId> outs;
    std::vector<int32_t> columns;
    const std::string base = site.name;
    for (size_t k = 0; k < edge.ops.size(); ++k) {
      const CandidateId id{int32_t(graph_.candidates.size())};
      graph_.candidates.push_back(ir::Candidate{.op = candidate_of(cell, edge.ops[k]),
                                                .arch = group,
                                                .row = group_row,
                                                .column = int32_t(k),
                                                .cell = index_ - 1,
                                                .label = base + "." + edge.ops[k]});
      b_.set_candidate(id);
      site.name = base + "." + edge.ops[k];
      const ValueId out = edge_op(graph_.candidates.back().op, in, site);
      b_.set_candidate(CandidateId{});
      graph_.candidates[id.index()].output = out;
      outs.push_back(out);
      columns.push_back(int32_t(k));
      ids.push_back(id);
    }
    return MixedTerms{.row = group_row,
                      .coefficients = coef,
                      .ids = std::move(ids),
                      .outs = std::move(outs),
                      .columns = std::move(columns),
                      .name = base};
  }

  ValueId join_edges(const Cell& cell, const Node& node, const std::vector<ValueId>& edges,
                     const std::string& name) {
    if (edges.size() == 1) return edges[0];
    if (!node.path_weights) {
      b_.op1(OpKind::add_n, NoAttrs{}, edges, name + ".sum");
      ir::Node& n = graph_.nodes.back();
      n.drops_absent_inputs = true;
      n.input_candidates.assign(edges.size(), CandidateId{});
      return n.outputs[0];
    }
    const ArchGroupId group = path_group(cell, node);
    std::vector<int32_t> columns;
    for (size_t e = 0; e < edges.size(); ++e) columns.push_back(int32_t(e));
    std::vector<ValueId> inputs = edges;
    inputs.push_back(coefficients(group));
    return b_.op1(OpKind::weighted_sum, WeightedSumAttrs{0, columns}, inputs, name + ".paths");
  }

  // AGD: edge weights normalised over the node's incoming edges, one single-row group per
  // node (its in-degree is its own).
  ArchGroupId path_group(const Cell& cell, const Node& node) {
    const std::string group_name = group_prefix(cell) + "." + node.name + ".paths";
    const ArchGroupId found = find_group(group_name);
    if (found.valid()) return found;
    ir::ArchGroup g{
        .name = group_name, .kind = ir::ArchGroup::Kind::edge_paths, .cell = cell.name, .rows = 1};
    for (size_t e = 0; e < node.edges.size(); ++e) g.columns.push_back(row_label(node, e));
    g.row_labels.push_back(node.name);
    g.init.emplace_back(node.edges.size(), std::numeric_limits<double>::quiet_NaN());
    g.one_hot.push_back(-1);
    return add_group(std::move(g));
  }

  // A width search: one score per inner channel of the block `name`, starting at 1.
  void channel_group(const std::string& name, int64_t channels) {
    ir::ArchGroup g{.name = name + ".width",
                    .kind = ir::ArchGroup::Kind::channel_scores,
                    .rows = 1,
                    .row_labels = {name + ".conv_a"}};
    for (int64_t k = 0; k < channels; ++k) g.columns.push_back(std::to_string(k));
    g.init.emplace_back(size_t(channels), 1.0);
    add_group(std::move(g));
  }

  // The group prefix: the cell type when instances share parameters, else the instance.
  std::string group_prefix(const Cell& cell) const {
    return space_.arch.share_by_cell ? cell.name : "cells." + std::to_string(index_ - 1);
  }

  ArchGroupId find_group(const std::string& name) const {
    for (size_t g = 0; g < graph_.arch_groups.size(); ++g)
      if (graph_.arch_groups[g].name == name) return ArchGroupId{int32_t(g)};
    return ArchGroupId{};
  }

  ArchGroupId add_group(ir::ArchGroup g) {
    graph_.arch_groups.push_back(std::move(g));
    return ArchGroupId{int32_t(graph_.arch_groups.size() - 1)};
  }

  // The edge-op group for this cell and op list; adds the edge's row on first sight.
  // Sets row_in_group_.
  ArchGroupId edge_group(const Cell& cell, const Edge& edge, int cell_row,
                         const std::string& row_label) {
    const std::string ops_key = join(edge.ops, ",");
    const std::string key = group_prefix(cell) + "|" + ops_key;
    auto [it, fresh] = group_of_key_.try_emplace(key);
    if (fresh) {
      int same_cell = 0;
      for (const auto& [k, id] : group_of_key_)
        same_cell += k.rfind(group_prefix(cell) + "|", 0) == 0;
      std::string name = group_prefix(cell);
      if (same_cell > 1)
        name += "." + (edge.op_set.empty() ? "ops" + std::to_string(same_cell) : edge.op_set);
      it->second = add_group(ir::ArchGroup{.name = name, .cell = cell.name, .columns = edge.ops});
    }
    ir::ArchGroup& g = graph_.arch_groups[it->second.index()];
    // Rows are keyed by the edge's position in the cell, so every instance of a shared
    // cell type reads the same row.
    auto& rows = rows_of_group_[it->second.value];
    auto row = rows.find(cell_row);
    if (row == rows.end()) {
      row = rows.emplace(cell_row, g.rows++).first;
      g.row_labels.push_back(row_label);
      std::vector<double> init(edge.ops.size(), std::numeric_limits<double>::quiet_NaN());
      int32_t hot = -1;
      for (size_t k = 0; k < edge.ops.size(); ++k) {
        auto v = edge.init.find(edge.ops[k]);
        if (v != edge.init.end()) init[k] = v->second;
        if (edge.ops[k] == edge.init_one_hot) hot = int32_t(k);
      }
      if (hot >= 0) {  // the logits that give softmax weight ir::kOneHotWeight
        std::fill(init.begin(), init.end(), 0.0);
        init[size_t(hot)] = ir::one_hot_logit(edge.ops.size());
      }
      g.init.push_back(std::move(init));
      g.one_hot.push_back(hot);
    }
    row_in_group_ = row->second;
    return it->second;
  }

  // One coefficient value per group, created on first use.
  ValueId coefficients(ArchGroupId group) {
    auto [it, fresh] = coef_value_.try_emplace(group.value);
    if (fresh) it->second = b_.coefficients(group);
    return it->second;
  }

  const Space& space_;
  const CompileOptions options_;
  ir::Graph graph_;
  Builder b_;
  ValueId prev_prev_, prev_;
  ValueId momentum_source_;  // x_{k-1} of a heavy_ball block: the previous one's input
  bool prev_reduction_ = false;
  int reductions_ = 0;  // reduction cells built so far
  ValueId aux_input_;   // the second reduction cell's output
  int index_ = 0;
  int32_t row_in_group_ = 0;
  std::map<std::string, ArchGroupId> group_of_key_;
  std::map<int32_t, std::map<int, int32_t>> rows_of_group_;
  std::map<int32_t, ValueId> coef_value_;
};
}  // namespace

PoolAttrs aux_pool_attrs(int64_t height, int64_t width) {
  auto windows = [](int64_t extent, int k, int stride) {
    return extent < k ? 0 : (extent - k) / stride + 1;
  };
  if (windows(height, 5, 3) == 2 && windows(width, 5, 3) == 2)
    return PoolAttrs{.kernel = 5, .stride = 3, .padding = 0};
  if (height < 2 || width < 2)
    throw error("the map is smaller than 2 x 2; the head needs a 2 x 2 pooled map");
  if (height != width)
    throw error("a ", height, " x ", width,
                " map: the head pools square maps to 2 x 2 (or DARTS' 8 to 10 pixel maps)");
  return PoolAttrs{.kernel = int(height - height / 2), .stride = int(height / 2), .padding = 0};
}

std::optional<Unsupported> unsupported_by_compile(const Space&) { return std::nullopt; }

ir::Graph compile(const Space& space, const CompileOptions& options) {
  ir::Graph g = space.network.is_language_model() ? compile_language_model(space, options)
                                                  : Compiler(space, options).run();
  if (options.fold_relus) fold_concat_relu(g);
  if (options.fold_conv_relus) fold_conv_relu(g);
#ifndef NDEBUG
  g.verify();
#endif
  return g;
}

}  // namespace cellgraph::spec
