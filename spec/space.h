// spec::Space: a parsed, validated search space or fixed network (format 1). Plain
// structs with no JSON types; every element keeps its JSON pointer so later stages
// (compiler, derive) can point at the spec in their errors. docs/spec.md is the
// reference for the JSON that produces these.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ops/candidates.h"
#include "spec/json_value.h"

namespace cellgraph::spec {

// A scalar that multiplies an edge's output (the heavy-ball momentum, AGDNet's h): fixed, or
// a network weight trained with the others from `value`.
struct EdgeCoefficient {
  double value = 1;
  bool trainable = false;
  auto operator<=>(const EdgeCoefficient&) const = default;
};

// One incoming edge of a node: a set of candidate ops (search) or one op (fixed).
struct Edge {
  std::string from;              // a cell input or an earlier node
  std::vector<std::string> ops;  // candidate op names, in order; one entry = fixed edge
  std::string op_set;            // the named set it came from, "" when inline or fixed
  // Initial architecture logits by op name (e.g. one-hot on skip_connect); missing ops use
  // the space's random init.
  std::map<std::string, double> init;
  // The op whose coefficient starts one-hot ("" for none): every relaxation starts the
  // edge's row there (ir::ArchGroup::one_hot). Excludes `init`.
  std::string init_one_hot;
  // The edge's output times this scalar (after its op, or its candidates' weighted sum).
  std::optional<EdgeCoefficient> coefficient;
  std::string pointer;       // JSON pointer of this edge
  std::string from_pointer;  // JSON pointer of its `from` name
};

struct Node {
  std::string name;
  std::vector<Edge> edges;
  // Derivation: k > 0 keeps the k strongest edges, each with its best non-none op (DARTS);
  // 0 (not given) keeps every edge with its arg-max op, none included (NATS-Bench).
  int keep = 0;
  bool path_weights = false;  // per-edge weights normalised over the node's edges (AGD)
  std::string pointer;
};

using CellKind = CellForm;  // convolutional or recurrent (ops/candidates.h)

struct CellOutput {
  std::vector<std::string> concat;    // channel concat of these nodes (size 1: that node)
  std::vector<std::string> pointers;  // JSON pointer of each name in `concat`
  std::string pointer;                // JSON pointer of the output object
};

struct Cell {
  std::string name;
  CellKind kind = CellKind::convolutional;
  std::vector<std::string> inputs;  // 1 or 2 named inputs (c_{k-1} last)
  std::vector<Node> nodes;          // in evaluation order
  CellOutput output;
  bool reduction = false;  // edges leaving the inputs have stride 2
  // "auto": ReLU-conv1x1-BN to the cell's channels (factorized reduce for the older input
  // after a reduction); "none": inputs must already have the cell's channels.
  std::string preprocess = "auto";
  // Recurrent cells (DARTS RNN) only:
  int steps = 0;
  std::string pointer;
};

// A layer of the stem, of a fixed block, or of the head.
struct Layer {
  std::string op;        // conv_3x3, conv_1x1, batch_norm, relu, global_avg_pool, linear, ...
  int64_t channels = 0;  // output channels (conv); 0 = keep
  int stride = 1;
  bool affine = true;  // batch_norm
  std::string pointer;
};

// One item of the network body: a stack of cells, or a fixed block.
struct Stage {
  std::string cell;  // cell name, or "" for a block
  // "residual" (NATS-Bench's ResNet basic block), "basic" (the ResNet paper's CIFAR basic
  // block), "heavy_ball" (HBNet's block), or ""
  std::string block;
  int64_t channels = 0;  // the cell's C (each node has C channels) / the block's output
  int repeat = 1;
  int stride = 1;  // blocks only
  // heavy_ball only: beta in x_{k+1} = F(x_k) + beta (x_k - x_{k-1})
  double momentum = 1;
  // Blocks only: the width of the block's inner conv (its first conv's output), 0 = channels.
  // A width search (RARTS) scores each of these channels and derivation prunes them, so a
  // derived network has a width per block.
  int64_t inner_channels = 0;
  bool width_search = false;  // blocks only: search the inner width (RARTS)
  std::string pointer;

  int64_t inner() const { return inner_channels > 0 ? inner_channels : channels; }
};

// A language model's variational dropouts (DARTS' RNN code): probabilities of zeroing, each
// 0 = off. `output`: on h_t before the decoder; `hidden`: on every state s_j (and h_{t-1})
// before its matrix product; `x`: on x_t before W0; `input`: on the embedded tokens;
// `embedding`: whole rows of the embedding matrix. One mask per sequence for the first
// four (shared by the T time steps), one per step for the embedding.
struct RecurrentDropout {
  double output = 0, hidden = 0, x = 0, input = 0, embedding = 0;
  std::string pointer;
  bool operator==(const RecurrentDropout& o) const {
    return output == o.output && hidden == o.hidden && x == o.x && input == o.input &&
           embedding == o.embedding;
  }
};

struct Network {
  int64_t in_channels = 3, in_height = 32, in_width = 32;
  // A language model ("input": [T], a body of one recurrent cell): T tokens per sample,
  // the BPTT length; 0 for an image network. `classes` is then the vocabulary.
  int64_t sequence_length = 0;
  std::optional<RecurrentDropout> dropout;  // language models only
  int64_t classes = 10;
  std::vector<Layer> stem;
  std::vector<Stage> body;
  std::vector<Layer> head;
  // Every edge op (but none) ends in its own affine BN, and search-cell pooling gets no
  // other BN: ISTA-NAS one-stage, whose searched coefficients are absorbed into these BNs.
  bool edge_bn = false;
  std::string pointer;

  bool is_language_model() const { return sequence_length > 0; }
};

struct ArchOptions {
  double init_std = 1e-3;  // architecture logits ~ init_std * N(0, 1)
  // One parameter set per cell type, shared by its instances. The reader refuses
  // "share": "none" (derivation writes one architecture per cell type), so only a Space
  // built in code has false here: the compiler then makes one group per instance, which
  // derive refuses.
  bool share_by_cell = true;
};

struct Space {
  int format = 1;
  std::string name;
  std::string description;
  std::string file;  // where it was read from
  // "metadata": facts about the space that do not change the network it builds (derive
  // records the NATS-Bench entry and the skip-connection ratio here). A JSON object, carried
  // through to_json as given; null when the spec has none.
  JsonValue metadata;
  std::map<std::string, std::vector<std::string>> op_sets;
  std::vector<Cell> cells;
  Network network;
  ArchOptions arch;

  const Cell* find_cell(const std::string& name) const;
  // Every edge has exactly one op and no block's width is searched.
  bool is_fixed() const;
  bool searches_widths() const;  // some block stage has "width_search"
};

}  // namespace cellgraph::spec
