// The candidate ops a spec can name on an edge: composite ops (sep_conv_3x3 is eight
// primitive ops) listed once. The spec parser validates names against this list; the IR
// compiler expands each name into primitive op nodes (ops/candidates.cpp).
#pragma once

#include <string_view>
#include <vector>

namespace cellgraph {

enum class CellForm { convolutional, recurrent };

#define CELLGRAPH_CANDIDATE_LIST(X)                                  \
  X(none, convolutional)                                             \
  X(skip_connect, convolutional)                                     \
  X(max_pool_3x3, convolutional)                                     \
  X(avg_pool_3x3, convolutional)                                     \
  X(sep_conv_3x3, convolutional)                                     \
  X(sep_conv_5x5, convolutional)                                     \
  X(dil_conv_3x3, convolutional)                                     \
  X(dil_conv_5x5, convolutional)                                     \
  X(conv_1x1, convolutional)                                         \
  X(conv_3x3, convolutional)                                         \
  X(nor_conv_1x1, convolutional)                                     \
  X(nor_conv_3x3, convolutional)                                     \
  X(neg_identity, convolutional)                                     \
  X(factorized_reduce, convolutional)                                \
  X(conv_bn_relu_3x3, convolutional)                                 \
  X(rnn_none, recurrent)     /* spelled "none" in recurrent cells */ \
  X(rnn_tanh, recurrent)     /* "tanh" */                            \
  X(rnn_relu, recurrent)     /* "relu" */                            \
  X(rnn_sigmoid, recurrent)  /* "sigmoid" */                         \
  X(rnn_identity, recurrent) /* "identity" */

enum class Candidate {
#define CELLGRAPH_CANDIDATE_ENUM(name, form) name,
  CELLGRAPH_CANDIDATE_LIST(CELLGRAPH_CANDIDATE_ENUM)
#undef CELLGRAPH_CANDIDATE_ENUM
};

struct CandidateInfo {
  Candidate id;
  std::string_view name;  // as written in a spec
  CellForm form;
};

const std::vector<CandidateInfo>& candidate_ops();
// The candidate of this name in cells of this form, or null.
const CandidateInfo* find_candidate(std::string_view name, CellForm form);

}  // namespace cellgraph
