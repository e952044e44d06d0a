// Pooling over x[N,C,H,W]: max and average (padding excluded from the average) with a
// square window, and global average pooling to [N,C,1,1].
#include "ops/ops.h"
#include "ops/schema.h"
#include "ops/shape_check.h"

namespace cellgraph {

namespace {
template <const char* Name>
std::vector<Shape> infer_pool(const Attrs& attrs, const std::vector<Shape>& in) {
  const auto& a = std::get<PoolAttrs>(attrs);
  require_rank(Name, "input", in[0], 4);
  if (a.padding * 2 > a.kernel)
    throw error(Name, ": padding ", a.padding, " is more than half the window ", a.kernel);
  return {Shape{in[0][0], in[0][1], window_out(Name, in[0][2], a.kernel, a.stride, a.padding),
                window_out(Name, in[0][3], a.kernel, a.stride, a.padding)}};
}
constexpr char kMaxPool[] = "max_pool";
constexpr char kAvgPool[] = "avg_pool";

std::vector<Shape> infer_global_avg_pool(const Attrs&, const std::vector<Shape>& in) {
  require_rank("global_avg_pool", "input", in[0], 4);
  return {Shape{in[0][0], in[0][1], 1, 1}};
}
}  // namespace

OpSchema schema_max_pool() {
  // The backward reads the saved oneDNN workspace, not the input.
  return {.name = "max_pool", .infer = infer_pool<kMaxPool>};
}
OpSchema schema_avg_pool() { return {.name = "avg_pool", .infer = infer_pool<kAvgPool>}; }
OpSchema schema_global_avg_pool() {
  return {.name = "global_avg_pool", .infer = infer_global_avg_pool};
}

namespace ops {
Var max_pool(const Var& x, PoolAttrs attrs) { return apply(OpKind::max_pool, attrs, {x})[0]; }
Var avg_pool(const Var& x, PoolAttrs attrs) { return apply(OpKind::avg_pool, attrs, {x})[0]; }
Var global_avg_pool(const Var& x) { return apply(OpKind::global_avg_pool, NoAttrs{}, {x})[0]; }
}  // namespace ops

}  // namespace cellgraph
