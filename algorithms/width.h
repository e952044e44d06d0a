// Derivation of a width search (RARTS; Network Slimming's global channel ranking): every
// inner channel of a block with "width_search" has a score gamma (the channel-score group
// the compiler makes, spec/compile.cpp), which multiplies the channel after the block's
// first BN. Derivation keeps the channels with the largest |gamma| over all scored blocks
// together, writes each such block with its own inner width, and carries the surviving
// weights over with gamma folded into that BN (gamma * BN(x) is a BN with gamma * weight and
// gamma * bias), so the pruned network computes what the scored network computes with the
// pruned channels' gamma set to 0.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// Network Slimming's weight training (lr 0.1, weight decay 1e-4), the defaults of a width
// search in place of DARTS' 0.025 and 3e-4 (cellgraph search applies them unless --lr or
// --weight-decay is given).
constexpr double kWidthSearchLr = 0.1;
constexpr double kWidthSearchWeightDecay = 1e-4;

struct WidthBlock {
  int32_t group = 0;          // its channel-score group
  std::string block;          // "cells.3": the block's parameter prefix
  std::vector<float> scores;  // gamma per inner channel
  std::vector<int64_t> kept;  // surviving channels, ascending
};

// The top round(keep * total) channels by |gamma| over every scored block (ties: earlier
// block, then lower channel); every block keeps at least its strongest channel. `logits`
// holds each group's values (channel-score groups: gamma). Throws Error for keep outside
// (0, 1] or a non-finite score.
std::vector<WidthBlock> select_widths(const ir::Graph& graph, const std::vector<Var>& logits,
                                      double keep);

// The kept inner widths in block order, "widths=[2, 3, 5]" (the derived genotype's part).
std::string widths_text(const std::vector<WidthBlock>& blocks);

// `space` with every width-searched block stage written out one stage per repeat (only the
// first strides, as before), each with its kept inner width and no width search.
spec::Space pruned_space(const spec::Space& space, const std::vector<WidthBlock>& blocks);

// The pruned network's weights by name, from the scored network's: conv_a's kept output
// channels, its BN's kept entries (weight and bias times gamma), conv_b's kept input
// channels, every other parameter whose name and shape `pruned` shares as it is (the rest,
// e.g. ops a cell derivation adds, are left out).
std::vector<std::pair<std::string, Tensor>> pruned_weights(const ir::Graph& scored,
                                                           const ir::ParameterStore& params,
                                                           const std::vector<WidthBlock>& blocks,
                                                           const ir::Graph& pruned);

}  // namespace cellgraph::algorithms
