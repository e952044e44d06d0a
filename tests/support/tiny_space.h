// The tiny search space several tests run: one search cell with two nodes, four candidates
// per edge (none, skip_connect, sep_conv_3x3, max_pool_3x3), C=4, a 1x8x8 input, 3 classes;
// a NATS-Bench topology space as small (kTinyNatsSpace); and a recurrent language model as
// small (kTinyRnnSpace).
#pragma once

#include <string>

namespace cellgraph::testing {

inline constexpr const char* kTinySpace = R"({
  "format": 1, "name": "tiny",
  "op_sets": {"small": ["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"]},
  "cells": [{
    "name": "normal", "inputs": ["c_k-2", "c_k-1"],
    "nodes": [
      {"name": "a", "from": ["c_k-2", "c_k-1"], "ops": "small", "keep": 2},
      {"name": "b", "from": ["c_k-2", "c_k-1", "a"], "ops": "small", "keep": 2}
    ],
    "output": {"concat": ["a", "b"]}
  }],
  "network": {
    "input": [1, 8, 8], "classes": 3,
    "stem": [{"op": "conv_3x3", "channels": 6}, {"op": "batch_norm"}],
    "body": [{"cell": "normal", "channels": 4}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";

// A NATS-Bench search space small enough to search for two steps in a test.
inline constexpr const char* kTinyNatsSpace = R"({
  "format": 1, "name": "nats_small",
  "op_sets": {"nats": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]},
  "cells": [{
    "name": "tss", "inputs": ["in"], "preprocess": "none",
    "nodes": [
      {"name": "n1", "from": ["in"], "ops": "nats"},
      {"name": "n2", "from": ["in", "n1"], "ops": "nats"},
      {"name": "n3", "from": ["in", "n1", "n2"], "ops": "nats"}
    ],
    "output": {"node": "n3"}
  }],
  "network": {
    "input": [1, 8, 8], "classes": 10,
    "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
    "body": [{"cell": "tss", "channels": 4}, {"block": "residual", "channels": 8, "stride": 2},
             {"cell": "tss", "channels": 8}],
    "head": [{"op": "batch_norm"}, {"op": "relu"}, {"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";

// The tiny space with three candidates per edge, without `none` (SparseNAS refuses it: a
// zero path is an entry A = 0).
inline std::string tiny_space_without_none() {
  std::string s = kTinySpace;
  const std::string none = "\"none\", ";
  s.erase(s.find(none), none.size());
  return s;
}

// A DARTS RNN search cell with two nodes (three mixed edges of none, tanh, relu, sigmoid,
// identity) unrolled over T = 3 tokens, H = 3, a vocabulary of 5, every dropout on.
inline constexpr const char* kTinyRnnSpace = R"({
  "format": 1, "name": "tiny_rnn",
  "op_sets": {"rnn": ["none", "tanh", "relu", "sigmoid", "identity"]},
  "cells": [{
    "name": "rnn", "kind": "recurrent", "steps": 2, "inputs": ["s0"],
    "nodes": [
      {"name": "n1", "from": ["s0"], "ops": "rnn", "keep": 1},
      {"name": "n2", "from": ["s0", "n1"], "ops": "rnn", "keep": 1}
    ],
    "output": {"concat": ["n1", "n2"]}
  }],
  "network": {"input": [3], "classes": 5, "body": [{"cell": "rnn", "channels": 3}],
              "head": [{"op": "linear"}],
              "dropout": {"output": 0.4, "hidden": 0.25, "x": 0.3, "input": 0.2, "embedding": 0.3}}
})";

}  // namespace cellgraph::testing
