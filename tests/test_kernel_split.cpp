// The kernel counters' split (engine/backends/backend.h, bench/profile_step --split): every
// kernel is attributed to a candidate op, to a node several candidates share, or to the
// rest of the network, forward and backward, and the optimizers' vector operations are
// timed apart; and (bench/profile_step --shapes) each kernel is counted by its shapes too.
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/ir/parameter_store.h"
#include "engine/optim/sgd.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {
// Turns the split on for a test and off again, with fresh counts.
struct SplitOn {
  SplitOn() {
    reset_kernel_counts();
    set_kernel_split(true);
  }
  ~SplitOn() { set_kernel_split(false); }
  SplitOn(const SplitOn&) = delete;
  SplitOn& operator=(const SplitOn&) = delete;
};

// One forward and backward of `graph` with every candidate active, then an SGD step.
void run_step(const ir::Graph& graph) {
  ir::ParameterStore params(graph, 4);
  Rng rng(2);
  const Var images(normal_tensor({2, 1, 8, 8}, 0, 1, rng));
  std::vector<Var> coefficients;
  for (const ir::ArchGroup& group : graph.arch_groups)
    coefficients.emplace_back(
        uniform_tensor({group.rows, int64_t(group.columns.size())}, 0.1f, 1.0f, rng), true);
  const sched::RunOptions options{.training = true, .coefficients = coefficients};
  ops::sum(
      sched::run(graph, params, sched::make_plan(graph, sched::all_active(graph)), images, options))
      .backward();
  Sgd sgd(params.weights(), SgdOptions{.lr = 0.1f, .momentum = 0.9f});
  sgd.step();
}

int64_t total(const std::array<int64_t, kOpCount>& counts) {
  int64_t sum = 0;
  for (int64_t c : counts) sum += c;
  return sum;
}

std::string fixed_tiny_space() {
  std::string s = testing::kTinySpace;
  const std::string set = R"(["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"])";
  s.replace(s.find(set), set.size(), R"(["sep_conv_3x3"])");
  return s;
}

size_t op(OpKind kind) { return static_cast<size_t>(kind); }
constexpr size_t kNetwork = static_cast<size_t>(KernelPart::network);
constexpr size_t kShared = static_cast<size_t>(KernelPart::shared);
constexpr size_t kCandidate = static_cast<size_t>(KernelPart::candidate);
}  // namespace

TEST_CASE("kernel split: candidate, shared and other kernels add up to every kernel that ran") {
  // The ReLUs stay nodes (spec/fold_conv_relu.h): two of them are the shared part.
  const ir::Graph graph = spec::compile(spec::parse_string(testing::kTinySpace, "tiny.json"),
                                        {.fold_conv_relus = false});
  REQUIRE(graph.candidates.size() == 5 * 4);
  int64_t shared_nodes = 0;  // the ReLUs of c_k-2 and c_k-1, each read by two sep_convs
  for (const ir::Node& n : graph.nodes) shared_nodes += n.absent_with_input;
  REQUIRE(shared_nodes == 2);
  const SplitOn split;
  run_step(graph);
  const KernelCounts& k = kernel_counts();
  for (size_t d = 0; d < 2; ++d) {
    const auto& all = d == 0 ? k.forward : k.backward;
    const auto& candidate = d == 0 ? k.candidate_forward : k.candidate_backward;
    const auto& parts = d == 0 ? k.forward_parts : k.backward_parts;
    const std::string direction = d == 0 ? "forward" : "backward";
    INFO(direction);
    CHECK(parts[kCandidate].calls == total(candidate));
    CHECK(parts[kShared].calls == shared_nodes);
    CHECK(parts[kNetwork].calls + parts[kShared].calls + parts[kCandidate].calls == total(all));
    CHECK(parts[kNetwork].calls > 0);
    CHECK(parts[kCandidate].calls > 0);
    CHECK(parts[kCandidate].wall_seconds > 0);
    CHECK(parts[kCandidate].cpu_seconds >= 0);
  }
  // Convs: the stem's and the two preprocessings' are the network's, the five sep_conv_3x3
  // candidates' four each are theirs; max pooling only in candidates; the sums never.
  CHECK(k.forward[op(OpKind::conv2d)] == 23);
  CHECK(k.candidate_forward[op(OpKind::conv2d)] == 20);
  CHECK(k.candidate_backward[op(OpKind::conv2d)] == 20);
  CHECK(k.candidate_forward[op(OpKind::max_pool)] == 5);
  CHECK(k.candidate_backward[op(OpKind::max_pool)] == 5);
  CHECK(k.forward[op(OpKind::weighted_sum)] > 0);
  CHECK(k.candidate_forward[op(OpKind::weighted_sum)] == 0);
  CHECK(k.candidate_backward[op(OpKind::weighted_sum)] == 0);
  CHECK(k.candidate_forward_seconds[op(OpKind::weighted_sum)] == 0);
  CHECK(k.candidate_forward_seconds[op(OpKind::conv2d)] > 0);
  CHECK(k.candidate_forward_seconds[op(OpKind::conv2d)] <= k.forward_seconds[op(OpKind::conv2d)]);
  // A value read by several edges gets its gradient summed; the SGD step is vector work.
  CHECK(k.accumulate.calls > 0);
  CHECK(k.vector_ops.calls > 0);
  // The executor's scope ended with the run.
  CHECK(current_kernel_part() == KernelPart::network);
}

TEST_CASE("kernel split: a network without candidates spends nothing in candidate ops") {
  const ir::Graph graph = spec::compile(spec::parse_string(fixed_tiny_space(), "fixed.json"));
  REQUIRE(graph.candidates.empty());
  const SplitOn split;
  run_step(graph);
  const KernelCounts& k = kernel_counts();
  CHECK(total(k.candidate_forward) == 0);
  CHECK(total(k.candidate_backward) == 0);
  for (size_t part = 0; part < kKernelParts; ++part) {
    const KernelPartTime& forward = k.forward_parts[part];
    const KernelPartTime& backward = k.backward_parts[part];
    if (part != kNetwork) {
      CHECK(forward.calls == 0);
      CHECK(backward.calls == 0);
      CHECK(forward.wall_seconds == 0);
      CHECK(backward.cpu_seconds == 0);
    } else {
      CHECK(forward.calls == total(k.forward));
      CHECK(backward.calls == total(k.backward));
      CHECK(forward.wall_seconds > 0);
    }
  }
}

TEST_CASE("kernel split: off, only the per-op counts are kept") {
  const ir::Graph graph = spec::compile(spec::parse_string(testing::kTinySpace, "tiny.json"));
  reset_kernel_counts();
  REQUIRE_FALSE(kernel_split());
  run_step(graph);
  const KernelCounts& k = kernel_counts();
  CHECK(k.candidate_forward[op(OpKind::conv2d)] == 20);
  for (size_t part = 0; part < kKernelParts; ++part) {
    CHECK(k.forward_parts[part].calls == 0);
    CHECK(k.backward_parts[part].calls == 0);
  }
  CHECK(k.accumulate.calls == 0);
  CHECK(k.vector_ops.calls == 0);
}

TEST_CASE("kernel shapes: each kernel is also counted under its op, pass, shapes and attributes") {
  const ir::Graph graph = spec::compile(spec::parse_string(testing::kTinySpace, "tiny.json"));
  reset_kernel_counts();
  set_kernel_shapes(true);
  run_step(graph);
  set_kernel_shapes(false);
  const KernelCounts& k = kernel_counts();
  const std::map<std::string, ShapeKernelTime>& times = kernel_shape_times();
  // An op's keys add up to its per-op counts and seconds, forward and backward.
  for (const OpKind kind : {OpKind::conv2d, OpKind::batch_norm, OpKind::max_pool,
                            OpKind::weighted_sum, OpKind::concat}) {
    const std::string name = op_name(kind);
    int64_t forward_calls = 0;
    int64_t backward_calls = 0;
    double forward_seconds = 0;
    double backward_seconds = 0;
    for (const auto& [key, t] : times) {
      if (key.starts_with(name + " fwd ")) {
        forward_calls += t.calls;
        forward_seconds += t.seconds;
      } else if (key.starts_with(name + " bwd ")) {
        backward_calls += t.calls;
        backward_seconds += t.seconds;
      }
    }
    INFO(name);
    CHECK(forward_calls == k.forward[op(kind)]);
    CHECK(backward_calls == k.backward[op(kind)]);
    CHECK(forward_seconds == doctest::Approx(k.forward_seconds[op(kind)]).epsilon(1e-9));
    CHECK(backward_seconds == doctest::Approx(k.backward_seconds[op(kind)]).epsilon(1e-9));
  }
  const auto calls = [&](const std::string& key) {
    const auto it = times.find(key);
    return it == times.end() ? int64_t{-1} : it->second.calls;
  };
  // Batch 2 on 1x8x8 images: the stem's 3x3 conv to 6 channels, the two preprocessing 1x1
  // convs 6 -> 4, and the 5 sep_conv_3x3 candidates' two depthwise and two pointwise convs
  // each. A depthwise conv whose ReLU was folded in (its one reader) has a key of its own:
  // the second of every sep_conv, and the first of the one edge leaving node a; the ReLUs
  // of c_k-2 and c_k-1 feed two edges each and stay nodes.
  CHECK(calls("conv2d fwd 2x1x8x8 6x1x3x3 s1 d1") == 1);
  CHECK(calls("conv2d fwd 2x6x8x8 4x6x1x1 s1 d1") == 2);
  CHECK(calls("conv2d fwd 2x4x8x8 4x1x3x3 s1 d1 g4") == 4);
  CHECK(calls("conv2d fwd 2x4x8x8 4x1x3x3 s1 d1 g4 relu") == 6);
  CHECK(calls("conv2d fwd 2x4x8x8 4x4x1x1 s1 d1") == 10);
  CHECK(calls("conv2d bwd 2x4x8x8 4x4x1x1 s1 d1") == 10);
  CHECK(calls("max_pool fwd 2x4x8x8 k3 s1") == 5);
  // Batch norms by input shapes: the stem's affine one reads [6] weight, bias and running
  // statistics; the preprocessing's and the candidates' (affine false), running statistics.
  CHECK(calls("batch_norm fwd 2x6x8x8 6 6 6 6") == 1);
  CHECK(calls("batch_norm fwd 2x4x8x8 4 4") == 2 + 5 * 2 + 5);

  // Off, the per-op counts go on and nothing is keyed.
  const int64_t conv_forwards = k.forward[op(OpKind::conv2d)];
  reset_kernel_counts();
  REQUIRE_FALSE(kernel_shapes());
  run_step(graph);
  CHECK(kernel_counts().forward[op(OpKind::conv2d)] == conv_forwards);
  CHECK(kernel_shape_times().empty());
}
