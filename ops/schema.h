// What the dispatcher and the compiler need to know about an op, independent of backend:
// its arity, its output shapes, and what its backward reads. Shape inference throws
// cellgraph::Error with "<op>: <what is wrong; what was expected>"; callers add the place.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/autodiff/var.h"
#include "engine/tensor/shape.h"
#include "ops/attrs.h"
#include "ops/op_list.h"

namespace cellgraph {

// Shapes of the inputs; an absent optional input has rank 0.
using ShapeInference = std::vector<Shape> (*)(const Attrs& attrs, const std::vector<Shape>& inputs);

// What a recorded node keeps for its backward: an input bit mask (as below) and whether
// the outputs. The rule sees, per input, whether it is given (defined) and whether it
// wants a gradient.
struct BackwardReads {
  uint32_t inputs = 0;
  bool outputs = false;
};
using BackwardReadsRule = BackwardReads (*)(const Attrs& attrs, const std::vector<bool>& given,
                                            const std::vector<bool>& wanted);

struct OpSchema {
  const char* name = nullptr;
  int min_inputs = 1;
  int max_inputs = 1;  // -1: any number (concat)
  ShapeInference infer = nullptr;
  // Input bit masks: bit i is input i; bit 31 stands for input 31 and every later one
  // (variadic ops). Read them with has_bit().
  uint32_t differentiable_inputs = ~0u;  // input i can receive a gradient
  uint32_t backward_reads_inputs = 0;    // the backward kernel reads input i's value
  bool backward_reads_outputs = false;   // the backward kernel reads the outputs' values
  // When what the backward reads depends on the call, this rule replaces the two fields
  // above: an activation that only an unwanted gradient would read is then not kept
  // (a conv's input when its weight is frozen, as in every architecture step).
  BackwardReadsRule backward_reads = nullptr;
  // relu: the mask y > 0 equals x > 0, so the backward may read either. The dispatcher
  // keeps the input where the node that produced it keeps it anyway (a batch norm without
  // affine saves its output), else the output.
  bool backward_reads_input_or_output = false;
  // The forward is cheap enough to run again in the backward instead of keeping its output
  // for a consumer's backward, from the Recompute level returned on (relu: elementwise; a
  // depthwise conv: convolutions). Such an op must be a pure function of its inputs and
  // attributes. Null, or Recompute::none: never.
  Recompute (*cheap_to_recompute)(const Attrs& attrs) = nullptr;
  // A parameterless, attribute-free unary op whose output depends on its input alone: the
  // IR builder makes one node per input value and shares it between all its readers
  // (DARTS applies ReLU to one edge input in four candidates and two preprocessings).
  bool shared_per_input = false;
};

const OpSchema& schema(OpKind kind);

constexpr uint32_t bit(int i) { return 1u << (i < 31 ? i : 31); }
constexpr bool has_bit(uint32_t mask, size_t i) { return (mask & bit(static_cast<int>(i))) != 0; }

// One declaration per op: OpSchema schema_conv2d(); ... defined in the family files.
#define CELLGRAPH_OP_SCHEMA_DECL(name) OpSchema schema_##name();
CELLGRAPH_OP_LIST(CELLGRAPH_OP_SCHEMA_DECL)
#undef CELLGRAPH_OP_SCHEMA_DECL

}  // namespace cellgraph
