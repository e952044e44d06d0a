#include "algorithms/width.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/error.h"

namespace cellgraph::algorithms {

std::vector<WidthBlock> select_widths(const ir::Graph& graph, const std::vector<Var>& logits,
                                      double keep) {
  if (!(keep > 0 && keep <= 1))
    throw error("width search: the kept fraction of channels must be in (0, 1], got ", keep);
  std::vector<WidthBlock> blocks;
  struct Channel {
    float magnitude;
    size_t block;
    int64_t channel;
  };
  std::vector<Channel> all;
  for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
    const ir::ArchGroup& group = graph.arch_groups[g];
    if (group.kind != ir::ArchGroup::Kind::channel_scores) continue;
    WidthBlock b;
    b.group = int32_t(g);
    const std::string& label = group.row_labels.at(0);  // "cells.3.conv_a"
    b.block = label.substr(0, label.rfind(".conv_a"));
    b.scores = logits.at(g).value().to_vector();
    for (size_t k = 0; k < b.scores.size(); ++k) {
      if (!std::isfinite(b.scores[k]))
        throw error("channel scores '", group.name,
                    "' hold inf or NaN (the search diverged); refusing to derive from them");
      all.push_back({std::fabs(b.scores[k]), blocks.size(), int64_t(k)});
    }
    blocks.push_back(std::move(b));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Channel& a, const Channel& b) { return a.magnitude > b.magnitude; });
  const size_t budget = std::max<size_t>(1, size_t(std::llround(keep * double(all.size()))));
  for (size_t i = 0; i < all.size(); ++i) {
    WidthBlock& b = blocks[all[i].block];
    if (i < budget || b.kept.empty()) b.kept.push_back(all[i].channel);
  }
  for (WidthBlock& b : blocks) std::sort(b.kept.begin(), b.kept.end());
  return blocks;
}

std::string widths_text(const std::vector<WidthBlock>& blocks) {
  std::string out = "widths=[";
  for (size_t i = 0; i < blocks.size(); ++i)
    out += (i ? ", " : "") + std::to_string(blocks[i].kept.size());
  return out + "]";
}

spec::Space pruned_space(const spec::Space& space, const std::vector<WidthBlock>& blocks) {
  std::map<std::string, int64_t> width;
  for (const WidthBlock& b : blocks) width[b.block] = int64_t(b.kept.size());
  spec::Space out = space;
  out.network.body.clear();
  int index = 0;  // the instance index the compiler names blocks by ("cells.<index>")
  for (const spec::Stage& stage : space.network.body) {
    if (!stage.width_search) {
      out.network.body.push_back(stage);
      index += stage.repeat;
      continue;
    }
    for (int r = 0; r < stage.repeat; ++r) {
      spec::Stage one = stage;
      one.repeat = 1;
      one.stride = r == 0 ? stage.stride : 1;
      one.width_search = false;
      const auto w = width.find("cells." + std::to_string(index++));
      CG_ASSERT(w != width.end(), "no channel scores for a width-searched block");
      one.inner_channels = w->second;
      out.network.body.push_back(one);
    }
  }
  return out;
}

namespace {
// The entries `keep` of dimension `dim` of a contiguous tensor, each times `factor[i]`
// when given.
Tensor select(const Tensor& t, int dim, const std::vector<int64_t>& keep,
              const std::vector<float>* factor = nullptr) {
  const Tensor src = t.contiguous();
  const Shape& s = src.shape();
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  for (int d = dim + 1; d < int(s.rank()); ++d) inner *= s[d];
  const int64_t n = s[dim];
  Shape to = s;
  to[dim] = int64_t(keep.size());
  std::vector<float> out;
  out.reserve(size_t(to.numel()));
  const float* x = src.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep) {
      const float f = factor ? (*factor)[size_t(k)] : 1.0f;
      const float* row = x + (o * n + k) * inner;
      for (int64_t i = 0; i < inner; ++i) out.push_back(f * row[i]);
    }
  return Tensor::from_vector(to, out);
}
}  // namespace

std::vector<std::pair<std::string, Tensor>> pruned_weights(const ir::Graph& scored,
                                                           const ir::ParameterStore& params,
                                                           const std::vector<WidthBlock>& blocks,
                                                           const ir::Graph& pruned) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < scored.params.size(); ++i) index[scored.params[i].name] = i;
  std::map<std::string, const WidthBlock*> by_block;
  for (const WidthBlock& b : blocks) by_block[b.block] = &b;
  std::vector<std::pair<std::string, Tensor>> out;
  for (const ir::Parameter& p : pruned.params) {
    const auto at = index.find(p.name);
    if (at == index.end()) continue;
    const Tensor& value = params.all()[at->second].value();
    Tensor t;
    const size_t cut = p.name.find(".conv_");
    const auto b = cut == std::string::npos ? by_block.end() : by_block.find(p.name.substr(0, cut));
    if (b != by_block.end()) {
      const WidthBlock& w = *b->second;
      const std::string part = p.name.substr(cut);
      if (part == ".conv_a.conv.weight" || part == ".conv_a.bn.running_mean" ||
          part == ".conv_a.bn.running_var")
        t = select(value, 0, w.kept);
      else if (part == ".conv_a.bn.gamma" || part == ".conv_a.bn.beta")
        t = select(value, 0, w.kept, &w.scores);
      else if (part == ".conv_b.conv.weight")
        t = select(value, 1, w.kept);
    }
    if (!t.defined()) t = value.clone();
    if (t.shape() != p.shape) continue;  // not the same parameter in the pruned network
    out.emplace_back(p.name, t);
  }
  return out;
}

}  // namespace cellgraph::algorithms
