// The DARTS evaluation setting in the library: the drop_path op (its gradient is checked
// with the element-wise op cases, tests/test_elementwise.cpp), drop-path and auxiliary
// head compiled into a training graph (spec::CompileOptions), the evaluation network of
// --cells / --channels (spec::evaluation_network) and the MAC count. The runner's flags
// are tested in tests/test_cli_train_options.cpp.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "engine/error.h"
#include "engine/ir/parameter_store.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "ops/ops.h"
#include "spec/builder.h"
#include "spec/compile.h"
#include "spec/evaluation_network.h"
#include "spec/parse.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;

namespace {
using testing::random;

const char* const kDartsV2 = CELLGRAPH_SOURCE_DIR "/examples/networks/darts_v2.json";
const char* const kNats = CELLGRAPH_SOURCE_DIR "/examples/networks/nats_tss_00001.json";

// Uniform values in +-[0.1, 1.1): no element is 0, so a dropped sample shows as zeros.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(size_t(shape.numel()));
  for (float& x : v) x = (rng.uniform() < 0.5f ? -1.0f : 1.0f) * rng.uniform(0.1f, 1.1f);
  return Tensor::from_vector(shape, v);
}

// DARTS_V2 cells as a small evaluation network: `cells` cells at C = `channels`.
spec::Space small_darts(int cells, int64_t channels, int64_t in_channels = 3, int64_t size = 32) {
  spec::Space s = spec::evaluation_network(spec::parse_file(kDartsV2), cells, channels);
  s.network.in_channels = in_channels;
  s.network.in_height = s.network.in_width = size;
  return s;
}

int count_ops(const ir::Graph& g, OpKind kind) {
  int n = 0;
  for (const ir::Node& node : g.nodes) n += node.op == kind;
  return n;
}

std::vector<float> run_logits(const ir::Graph& g, const ir::ParameterStore& params,
                              const Tensor& images, const sched::RunOptions& options) {
  const sched::Plan plan = sched::make_plan(g, sched::all_active(g));
  return sched::run(g, params, plan, Var(images), options).value().to_vector();
}

}  // namespace

// ---- the drop_path op ---------------------------------------------------------------------

TEST_CASE("drop_path: eval mode and p = 0 are the identity") {
  const Tensor x = random({5, 3, 4, 4}, 1);
  CHECK(ops::drop_path(Var(x), 0.5f, false, 3).value().to_vector() == x.to_vector());
  CHECK(ops::drop_path(Var(x), 0.0f, true, 3).value().to_vector() == x.to_vector());
}

TEST_CASE("drop_path: sample n is kept whole iff hash_uniform(seed, n) >= p, scaled by 1/(1-p)") {
  const float p = 0.3f;
  const uint64_t seed = 77;
  const int64_t batch = 64, inner = 2 * 3 * 3;
  const Tensor x = away_from_zero({batch, 2, 3, 3}, 2);
  const std::vector<float> in = x.to_vector();
  const std::vector<float> out = ops::drop_path(Var(x), p, true, seed).value().to_vector();
  int kept = 0;
  std::vector<float> expect(in.size());
  for (int64_t n = 0; n < batch; ++n) {
    const bool keep = hash_uniform(seed, uint64_t(n)) >= p;
    kept += keep;
    for (int64_t i = n * inner; i < (n + 1) * inner; ++i)
      expect[size_t(i)] = keep ? in[size_t(i)] * (1.0f / (1.0f - p)) : 0.0f;
  }
  CHECK(out == expect);
  CHECK(kept > 0);
  CHECK(kept < batch);
  CHECK(ops::drop_path(Var(x), p, true, seed + 1).value().to_vector() != out);
}

TEST_CASE("drop_path: the expectation is the input (keep-probability scaling)") {
  // 20000 samples of ones: the kept fraction is ~(1 - p) and the mean output ~1; the
  // standard error of the mean is sqrt(p / (1 - p) / N) ~ 0.0046 at p = 0.3.
  for (const float p : {0.1f, 0.3f, 0.6f}) {
    CAPTURE(p);
    const int64_t batch = 20000;
    const std::vector<float> out =
        ops::drop_path(Var(Tensor::full({batch, 2}, 1.0f)), p, true, 5).value().to_vector();
    double sum = 0;
    int64_t kept = 0;
    for (int64_t n = 0; n < batch; ++n) {
      sum += out[size_t(2 * n)];
      kept += out[size_t(2 * n)] != 0.0f;
      CHECK(out[size_t(2 * n)] == out[size_t(2 * n + 1)]);  // one decision per sample
    }
    const double se = std::sqrt(double(p) / (1.0 - double(p)) / double(batch));
    CHECK(std::abs(sum / double(batch) - 1.0) < 5 * se);
    CHECK(std::abs(double(kept) / double(batch) - (1.0 - double(p))) < 0.02);
  }
}

TEST_CASE("drop_path: p outside 0 <= p < 1 is a named error") {
  const Var x(random({2, 3}, 5));
  CHECK_THROWS_WITH_AS(ops::drop_path(x, 1.0f, true, 0), doctest::Contains("drop_path: p must"),
                       Error);
  CHECK_THROWS_AS(ops::drop_path(x, -0.1f, true, 0), Error);
}

// ---- drop-path in a training graph ------------------------------------------------------------

TEST_CASE("compile: drop_path follows every non-identity op of a fixed edge, only on request") {
  const spec::Space space = small_darts(3, 4);
  const ir::Graph plain = spec::compile(space);
  const ir::Graph dropped = spec::compile(space, {.drop_path = true});
  dropped.verify();
  CHECK(count_ops(plain, OpKind::drop_path) == 0);
  // DARTS_V2: normal cells have 8 edges, 2 of them skip_connect from c_k-2 at stride 1 (the
  // identity); reduction cells 8 edges whose skip_connects read node n0 (stride 1). Cell 0
  // is normal, cells 1 and 2 reductions: 6 + 5 + 5.
  CHECK(count_ops(dropped, OpKind::drop_path) == 16);
  // No parameters, so the weights and their seeded initial values are unchanged.
  REQUIRE(dropped.params.size() == plain.params.size());
  for (size_t i = 0; i < plain.params.size(); ++i)
    CHECK(dropped.params[i].name == plain.params[i].name);
  CHECK(dropped.macs() == plain.macs());
}

TEST_CASE("executor: drop-path is the identity in eval mode and at p = 0, seeded by the step") {
  const spec::Space space = small_darts(3, 4, 1, 16);
  const ir::Graph plain = spec::compile(space);
  const ir::Graph dropped = spec::compile(space, {.drop_path = true});
  const ir::ParameterStore pa(plain, 3), pb(dropped, 3);
  const Tensor images = random({8, 1, 16, 16}, 6);
  NoGradGuard no_grad;
  // Eval mode (BN running statistics, never updated here): exactly the plain network.
  const sched::RunOptions eval{.training = false, .drop_path_prob = 0.5f};
  CHECK(run_logits(dropped, pb, images, eval) == run_logits(plain, pa, images, eval));
  // Training at p = 0 (DARTS' first epoch): the same too. Fresh stores: training updates the
  // BN running statistics.
  const ir::ParameterStore pc(plain, 3), pd(dropped, 3);
  const sched::RunOptions train0{.training = true, .dropout_seed = 9};
  const std::vector<float> reference = run_logits(plain, pc, images, train0);
  CHECK(run_logits(dropped, pd, images, train0) == reference);
  // p > 0: other logits, the same for the same step seed, others for another step.
  const ir::ParameterStore pe(dropped, 3), pf(dropped, 3), pg(dropped, 3);
  const sched::RunOptions step9{.training = true, .dropout_seed = 9, .drop_path_prob = 0.4f};
  const sched::RunOptions step11{.training = true, .dropout_seed = 11, .drop_path_prob = 0.4f};
  const std::vector<float> a = run_logits(dropped, pe, images, step9);
  CHECK(a != reference);
  CHECK(run_logits(dropped, pf, images, step9) == a);
  CHECK(run_logits(dropped, pg, images, step11) != a);
}

// ---- the auxiliary head -------------------------------------------------------------------------

TEST_CASE("compile: the auxiliary head reads the second reduction cell, only on request") {
  const spec::Space space = small_darts(5, 4);  // reductions at cells 1 and 3, 8x8 after them
  const ir::Graph plain = spec::compile(space);
  const ir::Graph aux = spec::compile(space, {.auxiliary_head = true});
  aux.verify();
  CHECK_FALSE(plain.aux_logits.valid());
  REQUIRE(aux.aux_logits.valid());
  CHECK(aux.value(aux.aux_logits).shape == Shape{1, 10});
  // Its parameters come after the network's, which keep their names, shapes and seeded
  // initial values; weight_count() and macs() leave the head out.
  REQUIRE(aux.params.size() > plain.params.size());
  for (size_t i = 0; i < aux.params.size(); ++i) {
    const bool in_plain = i < plain.params.size();
    CAPTURE(aux.params[i].name);
    CHECK(aux.params[i].auxiliary == !in_plain);
    CHECK((aux.params[i].name.rfind("auxiliary.", 0) == 0) == !in_plain);
    if (in_plain) CHECK(aux.params[i].name == plain.params[i].name);
  }
  CHECK(aux.weight_count() == plain.weight_count());
  CHECK(aux.macs() == plain.macs());
  // 4C = 64 channels in: conv1x1 64*128 + BN 256 + conv2x2 128*768*4 + BN 1536 + linear
  // 768*10 + 10.
  CHECK(aux.auxiliary_weight_count() == 64 * 128 + 256 + 128 * 768 * 4 + 1536 + 768 * 10 + 10);
  const ir::ParameterStore pa(plain, 4), pb(aux, 4);
  for (size_t i = 0; i < plain.params.size(); ++i)
    CHECK(pa.all()[i].value().to_vector() == pb.all()[i].value().to_vector());
  // The pool is DARTS' 5x5 at stride 3 on the 8x8 map.
  for (const ir::Node& n : aux.nodes)
    if (n.auxiliary && n.op == OpKind::avg_pool) {
      const auto& pool = std::get<PoolAttrs>(n.attrs);
      CHECK(pool.kernel == 5);
      CHECK(pool.stride == 3);
      CHECK(pool.padding == 0);
    }
}

TEST_CASE("executor: the auxiliary head is a second output that leaves the logits unchanged") {
  const spec::Space space = small_darts(3, 4, 1, 28);  // Fashion-MNIST's 28 -> 14 -> 7
  const ir::Graph plain = spec::compile(space);
  const ir::Graph aux = spec::compile(space, {.auxiliary_head = true});
  const ir::ParameterStore pa(plain, 1), pb(aux, 1);
  const Tensor images = random({4, 1, 28, 28}, 7);
  const sched::RunOptions train{.training = true, .dropout_seed = 3};
  const sched::RunOutputs plain_out = sched::run_outputs(
      plain, pa, sched::make_plan(plain, sched::all_active(plain)), Var(images), train);
  CHECK_FALSE(plain_out.aux_logits.defined());
  const sched::Plan plan = sched::make_plan(aux, sched::all_active(aux));
  const sched::RunOutputs out = sched::run_outputs(aux, pb, plan, Var(images), train);
  REQUIRE(out.aux_logits.defined());
  CHECK(out.aux_logits.shape() == Shape{4, 10});
  CHECK(out.logits.value().to_vector() == plain_out.logits.value().to_vector());
  // Both outputs carry gradients to the weights: the head's and the cells' below it.
  ops::add(ops::sum(out.logits), ops::sum(out.aux_logits)).backward();
  for (size_t i = 0; i < aux.params.size(); ++i)
    if (aux.params[i].auxiliary && !aux.params[i].is_buffer) CHECK(pb.all()[i].grad().defined());
  // A plan of the graph without aux_logits skips the head.
  ir::Graph main = aux;
  main.aux_logits = {};
  CHECK(sched::make_plan(main, sched::all_active(main)).order.size() + 10 == plan.order.size());
}

TEST_CASE("compile: the auxiliary head's pool fits the map, or the error says why") {
  const PoolAttrs darts = spec::aux_pool_attrs(8, 8);  // CIFAR: DARTS' own pool
  CHECK(darts.kernel == 5);
  CHECK(darts.stride == 3);
  const PoolAttrs fmnist = spec::aux_pool_attrs(7, 7);  // Fashion-MNIST: 2x2 windows of 4
  CHECK(fmnist.kernel == 4);
  CHECK(fmnist.stride == 3);
  CHECK(spec::aux_pool_attrs(16, 16).kernel == 8);
  CHECK(spec::aux_pool_attrs(2, 2).kernel == 1);
  CHECK_THROWS_WITH_AS(spec::aux_pool_attrs(1, 1), doctest::Contains("smaller than 2 x 2"), Error);
  CHECK_THROWS_AS(spec::aux_pool_attrs(6, 7), Error);
  // Too small a map after the second reduction (4 -> 2 -> 1), and too few reductions.
  CHECK_THROWS_WITH_AS(spec::compile(small_darts(3, 4, 1, 4), {.auxiliary_head = true}),
                       doctest::Contains("auxiliary head"), Error);
  spec::Space one = small_darts(3, 4);
  one.network.body.pop_back();
  CHECK_THROWS_WITH_AS(spec::compile(one, {.auxiliary_head = true}),
                       doctest::Contains("the network has 1 reduction cell"), Error);
}

// ---- the evaluation network (--cells / --channels) --------------------------------------------

TEST_CASE("evaluation network: 20 cells at 36 is DARTS' CIFAR network, 3,349,342 weights") {
  const spec::Space original = spec::parse_file(kDartsV2);
  const spec::Space s = spec::evaluation_network(original, 20, 36);
  // Reductions at 20/3 = 6 and 40/3 = 13.
  struct Expect {
    const char* cell;
    int64_t channels;
    int repeat;
  };
  const std::vector<Expect> expect = {{"normal", 36, 6},
                                      {"reduce", 72, 1},
                                      {"normal", 72, 6},
                                      {"reduce", 144, 1},
                                      {"normal", 144, 6}};
  REQUIRE(s.network.body.size() == expect.size());
  for (size_t i = 0; i < expect.size(); ++i) {
    CAPTURE(i);
    CHECK(s.network.body[i].cell == expect[i].cell);
    CHECK(s.network.body[i].channels == expect[i].channels);
    CHECK(s.network.body[i].repeat == expect[i].repeat);
  }
  CHECK(s.network.stem[0].channels == 108);
  // DARTS reports 3.3M for DARTS_V2 (its count leaves the auxiliary head out, as ours).
  const ir::Graph g = spec::compile(s);
  CHECK(g.weight_count() == 3349342);
  CHECK(g.weight_count() == spec::compile(original).weight_count());
  // The auxiliary head on 576 channels at 8x8: 476,426 more, not in weight_count().
  const ir::Graph aux = spec::compile(s, {.auxiliary_head = true});
  CHECK(aux.weight_count() == 3349342);
  CHECK(aux.auxiliary_weight_count() == 476426);
}

TEST_CASE("evaluation network: 8 cells at 16 (reductions at 2 and 5), stem 3C, errors") {
  const spec::Space s = spec::evaluation_network(spec::parse_file(kDartsV2), 8, 16);
  std::vector<std::string> cells;
  std::vector<int64_t> channels;
  for (const spec::Stage& stage : s.network.body)
    for (int r = 0; r < stage.repeat; ++r) {
      cells.push_back(stage.cell);
      channels.push_back(stage.channels);
    }
  CHECK(cells == std::vector<std::string>{"normal", "normal", "reduce", "normal", "normal",
                                          "reduce", "normal", "normal"});
  CHECK(channels == std::vector<int64_t>{16, 16, 32, 32, 32, 64, 64, 64});
  CHECK(s.network.stem[0].channels == 48);
  // Rebuilding a rebuilt network (a resumed run's spec) changes nothing.
  const spec::Space again = spec::evaluation_network(s, 8, 16);
  CHECK(spec::to_json(again) == spec::to_json(s));

  CHECK_THROWS_WITH_AS(spec::evaluation_network(spec::parse_file(kNats), 8, 16),
                       doctest::Contains("a fixed 'residual' block"), Error);
  spec::Space normal_only = spec::parse_file(kDartsV2);
  normal_only.network.body = {normal_only.network.body[0]};
  CHECK_THROWS_WITH_AS(spec::evaluation_network(normal_only, 8, 16),
                       doctest::Contains("no reduction cell"), Error);
  CHECK_THROWS_AS(spec::evaluation_network(s, 2, 16), Error);
  CHECK_THROWS_AS(spec::evaluation_network(s, 8, 0), Error);
}

// ---- MACs -------------------------------------------------------------------------------------

TEST_CASE("graph: macs() counts conv (dense, depthwise, grouped) and linear per sample") {
  ir::Graph g;
  ir::Builder b(g);
  g.input = b.input({1, 4, 8, 8});
  ir::ValueId x = ir::conv(b, g.input, 6, 3, ConvAttrs{.padding = 1}, "dense");  // 8x8x6 out
  x = ir::conv(b, x, 6, 3, ConvAttrs{.stride = 2, .padding = 1, .groups = 6}, "depthwise");
  x = ir::conv(b, x, 4, 1, ConvAttrs{.groups = 2}, "grouped");  // 4x4x4 out, 3 in per group
  x = b.op1(OpKind::global_avg_pool, NoAttrs{}, {x}, "pool");
  x = b.op1(OpKind::flatten, NoAttrs{}, {x}, "flatten");
  const ir::ValueId w = b.parameter("fc.weight", {3, 4}, ir::Init::kaiming_uniform);
  g.logits = b.op1(OpKind::linear, NoAttrs{}, {x, w, ir::ValueId{}}, "fc");
  g.verify();
  const int64_t dense = 8 * 8 * 6 * (4 * 3 * 3);
  const int64_t depthwise = 4 * 4 * 6 * (1 * 3 * 3);
  const int64_t grouped = 4 * 4 * 4 * 3;
  const int64_t linear = 3 * 4;
  CHECK(g.macs() == dense + depthwise + grouped + linear);
  CHECK(g.weight_count() == 6 * 4 * 9 + 6 * 9 + 4 * 3 + 3 * 4);
}
