// Ops of recurrent cells. highway is the gated update every DARTS RNN node applies,
// y = s + sigmoid(c) * (fh - s): one op rather than sigmoid, negate, add, mul, add, so a
// search cell's many (predecessor, op) terms keep one output each and no four
// intermediates, and backward recomputes sigmoid(c) from the inputs it already keeps.
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
std::vector<Shape> infer_highway(const Attrs&, const std::vector<Shape>& in) {
  require_same("highway", in[0], in[1]);
  require_same("highway", in[0], in[2]);
  return {in[0]};
}
}  // namespace

// Backward reads all three inputs: ds = dy (1 - g), dc = dy (fh - s) g (1 - g), dfh = dy g
// with g = sigmoid(c).
OpSchema schema_highway() {
  return {.name = "highway",
          .min_inputs = 3,
          .max_inputs = 3,
          .infer = infer_highway,
          .backward_reads_inputs = bit(0) | bit(1) | bit(2)};
}

namespace ops {
Var highway(const Var& s, const Var& c, const Var& fh) {
  return apply(OpKind::highway, NoAttrs{}, {s, c, fh})[0];
}
}  // namespace ops

}  // namespace cellgraph
