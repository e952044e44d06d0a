// The tiny search space several tests run: one search cell with two nodes, four candidates
// per edge (none, skip_connect, sep_conv_3x3, max_pool_3x3), C=4, a 1x8x8 input, 3 classes.
#pragma once

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

}  // namespace cellgraph::testing
