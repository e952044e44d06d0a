// Width search (RARTS): the spec's "width_search" and "inner_channels", the channel scores the
// compiler adds, their place in RARTS' step, and derivation: the pruned network with its
// surviving weights computes what the scored network computes with the pruned scores at 0.
#include <algorithm>
#include <cmath>

#include <doctest/doctest.h>

#include "algorithms/algorithm.h"
#include "algorithms/rarts.h"
#include "algorithms/search_session.h"
#include "algorithms/width.h"
#include "engine/error.h"
#include "engine/optim/sgd.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/random_batch.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

constexpr const char* kWidthNet = R"({
  "format": 1, "name": "width_net", "cells": [],
  "network": {
    "input": [1, 8, 8], "classes": 3,
    "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
    "body": [
      {"block": "residual", "channels": 4, "repeat": 2, "width_search": true},
      {"block": "residual", "channels": 8, "stride": 2, "inner_channels": 6, "width_search": true}
    ],
    "head": [{"op": "batch_norm"}, {"op": "relu"}, {"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";

// The network with its blocks of `kind` (every block kind can have its width searched).
spec::Space width_space(const std::string& kind = "residual") {
  std::string text = kWidthNet;
  for (size_t at = text.find("residual"); at != std::string::npos;
       at = text.find("residual", at + kind.size()))
    text.replace(at, 8, kind);
  return spec::parse_string(text, "width.json");
}

const char* const kBlockKinds[] = {"residual", "basic", "heavy_ball"};

Var forward(const ir::Graph& g, const ir::ParameterStore& p, const std::vector<Var>& coef,
            const Batch& b, bool training) {
  return sched::run(g, p, sched::make_plan(g, sched::all_active(g)), Var(b.images),
                    sched::RunOptions{.training = training, .coefficients = coef});
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(double(x[i] - y[i])));
  return worst;
}

// Non-trivial BN running statistics, so that evaluation mode tests the folded BNs.
void randomise_buffers(const ir::Graph& g, const ir::ParameterStore& p, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < g.params.size(); ++i) {
    const Var& v = p.all()[i];
    float* d = v.value().data();
    for (int64_t e = 0; e < v.value().numel(); ++e) {
      const float r = rng.uniform();
      if (g.params[i].is_buffer)
        d[e] = g.params[i].name.find("running_var") != std::string::npos ? 0.5f + r : r - 0.5f;
      else if (g.params[i].name.find(".bn.") != std::string::npos)
        d[e] = 0.5f + r;  // BN weights and biases away from their initial 1 and 0
    }
  }
}

}  // namespace

TEST_CASE("width: the spec fields, their refusals and their JSON") {
  const spec::Space s = width_space();
  REQUIRE(s.network.body.size() == 2);
  CHECK(s.network.body[0].width_search);
  CHECK(s.network.body[0].inner() == 4);
  CHECK(s.network.body[1].inner() == 6);
  CHECK_FALSE(s.is_fixed());  // a width search is a search
  const spec::Space back = spec::parse_string(spec::to_json(s), "back.json");
  CHECK(back.network.body[1].inner_channels == 6);
  CHECK(back.network.body[1].width_search);

  std::string cell_stage = R"({"format": 1, "name": "c",
    "op_sets": {"s": ["none", "skip_connect"]},
    "cells": [{"name": "x", "inputs": ["in"], "nodes": [{"name": "a", "from": ["in"], "ops": "s"}],
               "output": {"node": "a"}}],
    "network": {"input": [1, 8, 8], "classes": 3,
                "body": [{"cell": "x", "channels": 4, "width_search": true}],
                "head": [{"op": "global_avg_pool"}, {"op": "linear"}]}})";
  CHECK_THROWS_WITH_AS(spec::parse_string(cell_stage, "c.json"),
                       doctest::Contains("c.json:/network/body/0/width_search: only a block's "
                                         "inner width can be searched"),
                       Error);
  cell_stage.replace(cell_stage.find("\"width_search\": true"), 20, "\"inner_channels\": 2");
  CHECK_THROWS_WITH_AS(spec::parse_string(cell_stage, "c.json"),
                       doctest::Contains("/network/body/0/inner_channels: only a block"), Error);
}

TEST_CASE("width: one score group per searched block, starting at 1 (the network unchanged)") {
  for (const std::string kind : kBlockKinds) {
    CAPTURE(kind);
    const spec::Space s = width_space(kind);
    const ir::Graph g = spec::compile(s);
    REQUIRE(g.arch_groups.size() == 3);  // two repeats of the first stage, one of the second
    CHECK(g.arch_groups[0].name == "cells.0.width");
    CHECK(g.arch_groups[2].name == "cells.2.width");
    CHECK(g.arch_groups[2].kind == ir::ArchGroup::Kind::channel_scores);
    CHECK(g.arch_groups[2].columns.size() == 6);
    const ArchState arch = prepared_arch_state(find_algorithm("rarts"), g, s, 1);
    for (const Var& l : arch.logits)
      CHECK(l.value().to_vector() == std::vector<float>(l.value().numel(), 1.0f));

    // Without the search: the same parameters and, at scores 1, the same logits.
    spec::Space plain = s;
    for (spec::Stage& st : plain.network.body) st.width_search = false;
    const ir::Graph pg = spec::compile(plain);
    REQUIRE(pg.params.size() == g.params.size());
    const ir::ParameterStore p(g, 4), pp(pg, 4);
    const Batch batch = testing::random_batch(3, 1, 8, 3, 1);
    CHECK(max_abs_difference(forward(g, p, current_coefficients(arch), batch, true).value(),
                             forward(pg, pp, {}, batch, true).value()) == 0);

    // Only RARTS' relaxation reads channel scores.
    CHECK_THROWS_WITH_AS(prepared_arch_state(find_algorithm("darts"), g, s, 1),
                         doctest::Contains("only --algo rarts searches widths"), Error);
  }
}

TEST_CASE("width: the pruned network computes the scored one with the pruned scores at 0") {
  for (const std::string kind : kBlockKinds) {
    CAPTURE(kind);
    const spec::Space s = width_space(kind);
    const ir::Graph g = spec::compile(s);
    const ir::ParameterStore p(g, 4);
    randomise_buffers(g, p, 2);
    ArchState arch = prepared_arch_state(find_algorithm("rarts"), g, s, 1);
    Rng rng(5);
    for (Var& l : arch.logits)
      for (int64_t e = 0; e < l.value().numel(); ++e)
        l.value().data()[e] = float(rng.normal());  // negative scores too
    const std::vector<WidthBlock> blocks = select_widths(g, arch.logits, 0.5);
    REQUIRE(blocks.size() == 3);
    size_t kept = 0;
    for (const WidthBlock& b : blocks) kept += b.kept.size();
    CHECK(kept == 7);  // half of 4 + 4 + 6
    // The kept ones are the largest |gamma| overall.
    float smallest_kept = 1e30f, largest_pruned = 0;
    for (const WidthBlock& b : blocks)
      for (size_t k = 0; k < b.scores.size(); ++k) {
        const float m = std::fabs(b.scores[k]);
        if (std::find(b.kept.begin(), b.kept.end(), int64_t(k)) != b.kept.end())
          smallest_kept = std::min(smallest_kept, m);
        else
          largest_pruned = std::max(largest_pruned, m);
      }
    CHECK(smallest_kept > largest_pruned);

    const spec::Space pruned = pruned_space(s, blocks);
    REQUIRE(pruned.network.body.size() == 3);  // the first stage's two repeats written out
    CHECK(pruned.network.body[1].stride == 1);
    CHECK(pruned.network.body[2].stride == 2);
    for (size_t i = 0; i < 3; ++i) {
      CHECK(pruned.network.body[i].inner_channels == int64_t(blocks[i].kept.size()));
      CHECK_FALSE(pruned.network.body[i].width_search);
    }
    CHECK(pruned.is_fixed());
    const ir::Graph pg = spec::compile(pruned);
    const std::vector<std::pair<std::string, Tensor>> weights = pruned_weights(g, p, blocks, pg);
    CHECK(weights.size() == pg.params.size());  // every parameter carried over
    const ir::ParameterStore pp(pg, 99);
    for (size_t i = 0; i < pg.params.size(); ++i)
      for (const auto& [name, t] : weights)
        if (name == pg.params[i].name) pp.all()[i].value().copy_from(t);

    // The scored network with the pruned channels' scores at 0.
    std::vector<Var> zeroed;
    for (const WidthBlock& b : blocks) {
      std::vector<float> v(b.scores.size(), 0.0f);
      for (int64_t k : b.kept) v[size_t(k)] = b.scores[size_t(k)];
      zeroed.emplace_back(Tensor::from_vector({1, int64_t(v.size())}, v));
    }
    const Batch batch = testing::random_batch(4, 1, 8, 3, 3);
    for (const bool training : {false, true}) {
      CAPTURE(training);
      const Tensor a = forward(g, p, zeroed, batch, training).value();
      const Tensor b = forward(pg, pp, {}, batch, training).value();
      CHECK(max_abs_difference(a, b) < 1e-5);
      // ... and not the scored network with its full scores (pruning changed something).
      CHECK(max_abs_difference(forward(g, p, current_coefficients(arch), batch, training).value(),
                               b) > 1e-3);
    }
  }
}

TEST_CASE("width: RARTS steps the scores with alpha's gradients plus rho * sign(gamma)") {
  const spec::Space s = width_space();
  const ir::Graph g = spec::compile(s);
  const ir::ParameterStore p(g, 4);
  HyperValues hyper = find_algorithm("rarts").default_hyperparameters();
  ArchState arch = find_algorithm("rarts").initial_state(g, s, hyper, 1);
  const Batch train = testing::random_batch(4, 1, 8, 3, 1),
              val = testing::random_batch(4, 1, 8, 3, 2);
  auto after_step = [&](double rho) {
    ArchState a = arch;
    for (Var& l : a.logits) l = Var(l.value().clone(), true, l.name());
    HyperValues h = hyper;
    h.set_number("rarts-width-l1", rho);
    const SgdOptions plain{.lr = 1.0f, .momentum = 0.0f, .weight_decay = 0.0f};
    Sgd w(p.weights(), plain), arch_sgd(a.logits, plain);
    StepContext ctx(g, p, a, w, arch_sgd, train, val, h);
    rarts_update_architecture(ctx);
    std::vector<float> out;
    for (const Var& l : a.logits) {
      const std::vector<float> v = l.value().to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  const std::vector<float> without = after_step(0), with = after_step(0.25);
  bool moved = false;
  for (size_t i = 0; i < without.size(); ++i) {
    moved |= without[i] != 1.0f;  // the data gradients reach the scores
    CHECK(double(without[i] - with[i]) == doctest::Approx(0.25).epsilon(1e-5));  // gamma > 0
  }
  CHECK(moved);
}

TEST_CASE(
    "width: a RARTS session derives the pruned network and its weights, also from a checkpoint") {
  spec::Space s = width_space();
  Rng rng(17);
  Dataset d;
  d.images = normal_tensor({16, 1, 8, 8}, 0, 1, rng);
  for (int i = 0; i < 16; ++i) d.labels.push_back(int32_t(rng.below(3)));
  d.num_classes = 3;
  SearchOptions o{.algorithm = "rarts", .epochs = 1, .batch_size = 4, .seed = 2, .arch_lr = 0.05f};
  o.hyper = find_algorithm("rarts").default_hyperparameters();
  o.hyper.set_number("rarts-width-keep", 0.5);
  SearchSession session(s, d, o);
  session.run();
  const Derived derived = session.derive();
  CHECK(derived.space.network.body.size() == 3);
  int64_t inner = 0;
  for (const spec::Stage& st : derived.space.network.body) inner += st.inner_channels;
  CHECK(inner == 7);
  CHECK(derived.genotype ==
        "widths=[" + std::to_string(derived.space.network.body[0].inner_channels) + ", " +
            std::to_string(derived.space.network.body[1].inner_channels) + ", " +
            std::to_string(derived.space.network.body[2].inner_channels) + "]");
  CHECK(derived.weights.size() == spec::compile(derived.space).params.size());
  const Derived again = derive_from_checkpoint(s, session.checkpoint());
  CHECK(spec::to_json(again.space) == spec::to_json(derived.space));
  REQUIRE(again.weights.size() == derived.weights.size());
  for (size_t i = 0; i < again.weights.size(); ++i) {
    CHECK(again.weights[i].first == derived.weights[i].first);
    CHECK(again.weights[i].second.to_vector() == derived.weights[i].second.to_vector());
  }
}
