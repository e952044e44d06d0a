// ISTA-NAS one-stage: the termination rule (b freezes once every node's code settled with
// an unchanged support; until then the edge BNs' gamma, beta stay 1, 0, afterwards they
// train and b does not), and the absorption gamma' = c gamma, beta' = c beta that turns the
// searched network into a fixed one computing the same thing.
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "algorithms/absorb.h"
#include "algorithms/algorithm.h"
#include "algorithms/ista.h"
#include "engine/error.h"
#include "engine/optim/adam.h"
#include "engine/sched/executor.h"
#include "engine/tensor/random.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/random_batch.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

std::string edge_bn_space() {
  std::string s = testing::kTinySpace;
  const std::string at = "\"classes\": 3,";
  s.replace(s.find(at), at.size(), at + " \"edge_bn\": true,");
  return s;
}

Batch make_batch(uint64_t seed) { return testing::random_batch(6, 1, 8, 3, seed); }

struct Setup {
  spec::Space space = spec::parse_string(edge_bn_space(), "tiny_bn.json");
  ir::Graph graph = spec::compile(space);
  ir::ParameterStore params{graph, 3};
  ArchState arch = prepared_arch_state(find_algorithm("ista-onestage"), graph, space, 1);
  Sgd sgd{params.weights(), SgdOptions{.lr = 0.05f, .momentum = 0.9f}};
  Adam adam{sparse_codes(arch).codes, AdamOptions{.lr = 0.05f}};
  Batch train = make_batch(1), val = make_batch(2);
  HyperValues hyper = find_algorithm("ista-onestage").default_hyperparameters();

  void step(uint64_t index) {
    StepContext ctx(graph, params, arch, sgd, adam, train, val, hyper);
    ctx.step = index;
    run_step(find_algorithm("ista-onestage"), ctx);
  }
  // gamma and beta of the candidates' closing BNs.
  std::vector<float> edge_affine() const {
    std::vector<float> out;
    for (size_t i = 0; i < graph.params.size(); ++i)
      if (graph.params[i].name.find(".out_bn.") != std::string::npos && !graph.params[i].is_buffer)
        for (float v : params.all()[i].value().to_vector()) out.push_back(v);
    return out;
  }
};

bool all_at_init(const std::vector<float>& affine) {
  // Stored as gamma then beta per BN; each BN's gamma is 1 and beta 0 at the start.
  for (float v : affine)
    if (v != 0.0f && v != 1.0f) return false;
  return true;
}
}  // namespace

TEST_CASE("ista-onestage: every edge op closes with an affine BN; a space without one is refused") {
  Setup s;
  int64_t closing = 0;
  for (const ir::Parameter& p : s.graph.params)
    closing += p.name.find(".out_bn.gamma") != std::string::npos;
  // 5 edges x 3 candidates other than none.
  CHECK(closing == 15);
  // The edge_bn flag survives writing and reading the spec (derived.json carries it).
  CHECK(s.space.network.edge_bn);

  const spec::Space plain = spec::parse_string(testing::kTinySpace, "tiny.json");
  CHECK_THROWS_WITH_AS(
      prepared_arch_state(find_algorithm("ista-onestage"), spec::compile(plain), plain, 1),
      doctest::Contains("tiny.json:/network: ista-onestage searches the evaluation network"),
      Error);
}

TEST_CASE("ista-onestage: the termination rule freezes b, then the edge BNs train") {
  SUBCASE("epsilon 0: never settles; gamma and beta stay exactly 1 and 0") {
    Setup s;
    s.hyper.set_number("ista-epsilon", 0);
    for (uint64_t i = 0; i < 4; ++i) s.step(i);
    CHECK_FALSE(sparse_codes(s.arch).codes_frozen);
    CHECK(all_at_init(s.edge_affine()));
  }
  SUBCASE("a large epsilon: frozen at the second step, not the first") {
    Setup s;
    s.hyper.set_number("ista-epsilon", 1e9);
    s.adam.set_lr(1e-7f);  // b barely moves: the supports stay
    s.step(0);
    CHECK_FALSE(sparse_codes(s.arch).codes_frozen);  // nothing has moved b yet: no evidence
    s.step(1);
    CHECK(sparse_codes(s.arch).codes_frozen);
    const std::vector<float> b = sparse_codes(s.arch).codes[0].value().to_vector();
    const std::vector<std::vector<int32_t>> supports = {sparse_codes(s.arch).nodes[0].support,
                                                        sparse_codes(s.arch).nodes[1].support};
    s.step(2);
    s.step(3);
    CHECK(sparse_codes(s.arch).codes[0].value().to_vector() == b);  // b no longer moves
    CHECK(sparse_codes(s.arch).nodes[0].support == supports[0]);
    CHECK(sparse_codes(s.arch).nodes[1].support == supports[1]);
    CHECK_FALSE(all_at_init(s.edge_affine()));  // the supported ops' BNs now train
  }
}

TEST_CASE("ista-onestage: absorbing c into the edge BNs leaves the eval outputs unchanged") {
  Setup s;
  s.hyper.set_number("ista-epsilon", 1e9);
  s.adam.set_lr(1e-7f);
  // Codes of order 1 (the init draws them ~1e-3), so c matters: b = 1000 b0 gives z ~ 1000 z0.
  for (Var& b : sparse_codes(s.arch).codes)
    for (int64_t i = 0; i < b.value().numel(); ++i) b.value().data()[i] *= 1000.0f;
  recover_all(s.graph, s.arch, sparse_code_options(s.hyper).lasso);
  for (uint64_t i = 0; i < 6; ++i) s.step(i);  // search, freeze, then train the BNs
  REQUIRE(sparse_codes(s.arch).codes_frozen);
  const std::vector<std::vector<float>> c = coefficient_values(s.arch);
  int nontrivial = 0;
  for (float v : c[0]) nontrivial += v != 0.0f && std::abs(v - 1.0f) > 1e-3f;
  REQUIRE(nontrivial == 4);  // s = 2 per node, two nodes

  Rng rng(9);
  const Var images(normal_tensor({5, 1, 8, 8}, 0, 1, rng));
  const Var before = sched::run(
      s.graph, s.params, sched::make_plan(s.graph, s.arch.active), images,
      sched::RunOptions{.training = false, .coefficients = current_coefficients(s.arch)});
  const Absorbed fixed = absorb(s.space, s.graph, s.params, s.arch, c);
  CHECK(fixed.space.is_fixed());
  CHECK(fixed.space.network.edge_bn);
  CHECK(fixed.graph.arch_groups.empty());
  const Var after = sched::run(fixed.graph, fixed.params,
                               sched::make_plan(fixed.graph, sched::all_active(fixed.graph)),
                               images, sched::RunOptions{.training = false});
  const std::vector<float> x = before.value().to_vector(), y = after.value().to_vector();
  REQUIRE(x.size() == y.size());
  double diff = 0, largest = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::abs(double(x[i]) - double(y[i])));
    largest = std::max(largest, std::abs(double(x[i])));
  }
  MESSAGE("max |supernet - absorbed| = ", diff, " (outputs up to ", largest, ")");
  // Outputs that depend on the image (the cells matter), not only on the head's bias.
  double spread = 0;
  for (size_t i = 3; i < x.size(); ++i)
    spread = std::max(spread, std::abs(double(x[i] - x[i % 3])));
  MESSAGE("logits vary across images by up to ", spread);
  CHECK(spread > 1e-2);
  CHECK(largest > 1e-3);
  CHECK(diff <= 1e-5);
}

TEST_CASE("ista-onestage: the shipped one-stage space is the DARTS evaluation network") {
  const spec::Space space =
      spec::parse_file(CELLGRAPH_SOURCE_DIR "/examples/spaces/darts_cnn_onestage.json");
  CHECK(space.network.edge_bn);
  const ir::Graph graph = spec::compile(space);
  const ArchState arch = prepared_arch_state(find_algorithm("ista-onestage"), graph, space, 1);
  CHECK(sparse_codes(arch).nodes.size() == 8);  // 4 nodes in each of the two cell types
  int64_t active = 0;
  for (uint8_t a : arch.active) active += a == sched::kActive;
  CHECK(active == 20 * 4 * 2);  // s = 2 ops per node, 4 nodes, 20 cells
}
