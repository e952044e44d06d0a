// Per-op attributes. Each op reads the one alternative its schema names; ops without
// attributes carry NoAttrs.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "engine/tensor/shape.h"

namespace cellgraph {

struct NoAttrs {};

struct ConvAttrs {
  int stride = 1;
  int padding = 0;
  int dilation = 1;
  int groups = 1;
  // The conv reads max(x, 0) instead of x: a ReLU folded in (spec/fold_conv_relu.h). Its
  // data gradient is then relu's masked one (zero where x <= 0).
  bool relu_input = false;
};

struct PoolAttrs {
  int kernel = 3;
  int stride = 1;
  int padding = 1;
};

struct BatchNormAttrs {
  bool training = true;   // batch statistics + running-stat update, else running stats
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch
  float eps = 1e-5f;
};

struct ConcatAttrs {
  // Rectify while concatenating: max(x, 0) of every element, as relu computes it. A search
  // network's cell output is read by one shared preprocessing ReLU only; the compiler folds
  // that ReLU in here (spec/fold_concat_relu.h), saving its pass over memory forward and
  // backward.
  bool relu = false;
};

struct SplitAttrs {
  std::vector<int64_t> sizes;  // channel counts of the pieces; they sum to C
};

struct SliceAttrs {
  // One entry per dimension; end is exclusive and clamped to the extent.
  std::vector<int64_t> starts, ends, steps;
};

struct ZeroAttrs {
  int stride = 1;  // spatial stride: the DARTS `none` op at a reduction edge
};

struct CrossEntropyAttrs {
  float label_smoothing = 0.0f;
};

struct DropoutAttrs {
  float p = 0.5f;
  bool training = true;
  uint64_t seed = 0;  // the mask is a pure function of (seed, element index)
  // In an IR graph, the executor seeds every dropout node with the same nonzero key from
  // (the step's dropout seed, key) instead of (seed, node), so they draw one mask: the
  // variational ("locked") dropout of a recurrent network, one mask for all time steps.
  // 0: none (each node its own mask).
  int32_t mask_key = 0;
  // One draw per row (index along dim 0) instead of per element: embedding dropout, which
  // zeroes whole rows of the embedding matrix (every occurrence of a word) and scales the
  // kept rows by 1 / (1 - p).
  bool rows = false;
};

// Drop-path (DARTS evaluation): each sample's whole tensor is kept with probability
// 1 - p (and scaled by 1 / (1 - p)) or zeroed. In an IR graph the executor sets p (it
// grows with the epoch), training and seed at run time.
struct DropPathAttrs {
  float p = 0.0f;
  bool training = true;
  uint64_t seed = 0;  // sample n is kept iff hash_uniform(seed, n) >= p
};

struct ReshapeAttrs {
  Shape shape;
  // The output's dim 0 is the input's (shape[0] is ignored): a per-sample reshape of a
  // batched activation, whose IR shape has batch 1 but runs with the real batch.
  bool keep_batch = false;
};

// A mixed edge: output = sum_i coef[row, columns[i]] * x_i. The coefficient matrix holds
// one row per edge of a cell type, so every cell instance reads its row of one shared
// matrix; only the columns of the candidates that ran are listed. A search cell's node
// sums all its mixed edges in one weighted sum (spec/compile.cpp): then each input has its
// own row, its edge's, in `rows`.
struct WeightedSumAttrs {
  int32_t row = 0;
  std::vector<int32_t> columns;  // one per summed input
  std::vector<int32_t> rows;     // empty (every input reads `row`) or one per summed input
  int32_t row_of(size_t i) const { return rows.empty() ? row : rows[i]; }
};

using Attrs = std::variant<NoAttrs, ConvAttrs, PoolAttrs, BatchNormAttrs, ConcatAttrs, SplitAttrs,
                           SliceAttrs, ZeroAttrs, CrossEntropyAttrs, DropoutAttrs, DropPathAttrs,
                           ReshapeAttrs, WeightedSumAttrs>;

}  // namespace cellgraph
