// ISTA-NAS one-stage: the termination rule (b freezes once every node's code settled with
// an unchanged support; until then the edge BNs' gamma, beta stay 1, 0, afterwards they
// train and b does not), and the absorption gamma' = c gamma, beta' = c beta that turns the
// searched network into a fixed one computing the same thing.
#include <cmath>
#include <map>
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
  void end_epoch(int64_t epoch) {
    find_algorithm("ista-onestage").end_epoch(graph, arch, hyper, epoch);
  }
  // gamma and beta of the closing BNs of one node's candidates.
  std::vector<float> node_affine(const SparseNode& n) const {
    std::vector<float> out;
    for (size_t i = 0; i < graph.params.size(); ++i) {
      const ir::Parameter& p = graph.params[i];
      if (p.name.find(".out_bn.") == std::string::npos || p.is_buffer || !p.candidate.valid())
        continue;
      const ir::Candidate& c = graph.candidate(p.candidate);
      if (c.arch.value != n.group || std::find(n.rows.begin(), n.rows.end(), c.row) == n.rows.end())
        continue;
      for (float v : params.all()[i].value().to_vector()) out.push_back(v);
    }
    return out;
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

TEST_CASE("ista-onestage: every edge op closes with an affine BN, a space without one is refused") {
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

TEST_CASE("ista-onestage: the closing BN is the op's own last BN, not one more after it") {
  // The paper's candidate ops end in their own BN, and that one becomes affine: a
  // sep_conv keeps exactly the BNs it has in DARTS, identity and pooling gain the one
  // they lack. An extra BN after the op's own would be a layer the paper's network has not.
  Setup s;
  std::map<int32_t, int> gammas, bns;  // per candidate id: affine BNs, all BNs
  for (const ir::Parameter& p : s.graph.params) {
    if (!p.candidate.valid()) continue;
    const bool gamma = p.name.ends_with(".gamma");
    const bool mean = p.name.ends_with(".running_mean");
    if (gamma) {
      ++gammas[int(p.candidate.index())];
      CHECK_MESSAGE(p.name.ends_with(".out_bn.gamma"), p.name);
    }
    if (mean) ++bns[int(p.candidate.index())];
  }
  int checked = 0;
  for (size_t i = 0; i < s.graph.candidates.size(); ++i) {
    const ir::Candidate& c = s.graph.candidates[i];
    const int id = int(i);
    switch (c.op) {
      case Candidate::none:
        CHECK(gammas[id] == 0);
        break;
      case Candidate::sep_conv_3x3:
        CHECK(gammas[id] == 1);  // the second half's BN, affine
        CHECK(bns[id] == 2);     // as in DARTS: two BNs, none added
        ++checked;
        break;
      case Candidate::skip_connect:
      case Candidate::max_pool_3x3:
        CHECK(gammas[id] == 1);
        CHECK(bns[id] == 1);
        ++checked;
        break;
      default:
        FAIL("unexpected op in the tiny space");
    }
  }
  CHECK(checked == 15);
}

TEST_CASE("ista-onestage: the per-step rule (earlier runs) freezes b, then the edge BNs train") {
  SUBCASE("epsilon 0: never settles; gamma and beta stay exactly 1 and 0") {
    Setup s;
    s.hyper.set_choice("ista-termination", "step");
    s.hyper.set_number("ista-epsilon", 0);
    for (uint64_t i = 0; i < 4; ++i) s.step(i);
    CHECK_FALSE(sparse_codes(s.arch).codes_frozen);
    CHECK(all_at_init(s.edge_affine()));
  }
  SUBCASE("a large epsilon: frozen at the second step, not the first") {
    Setup s;
    s.hyper.set_choice("ista-termination", "step");
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
  s.hyper.set_choice("ista-termination", "step");
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

// The paper's rule: checked once per epoch, per node. Adam steps of a small rate move z by
// less than epsilon per step, so a rule checked every step freezes after two steps; over an
// epoch the codes move by more, and the per-epoch rule must not fire.
TEST_CASE("ista-onestage: the per-epoch rule does not fire where the per-step rule would") {
  // Probe the step and epoch movements at this rate.
  Setup probe;
  probe.adam.set_lr(2e-4f);
  std::vector<double> start;
  for (const SparseNode& n : sparse_codes(probe.arch).nodes)
    for (double z : n.z) start.push_back(z);
  double largest_step = 0;
  for (uint64_t i = 0; i < 4; ++i) {
    probe.step(i);
    for (const SparseNode& n : sparse_codes(probe.arch).nodes)
      largest_step = std::max(largest_step, n.z_change);
  }
  double smallest_epoch = 1e30;
  size_t at = 0;
  for (const SparseNode& n : sparse_codes(probe.arch).nodes) {
    double change = 0;
    for (double z : n.z) change += (z - start[at]) * (z - start[at]), ++at;
    smallest_epoch = std::min(smallest_epoch, std::sqrt(change));
  }
  INFO("largest step change " << largest_step << ", smallest epoch change " << smallest_epoch);
  REQUIRE(largest_step * 2 < smallest_epoch);
  const double epsilon = std::sqrt(largest_step * smallest_epoch);  // between the two

  Setup per_step;
  per_step.adam.set_lr(2e-4f);
  per_step.hyper.set_choice("ista-termination", "step");
  per_step.hyper.set_number("ista-epsilon", epsilon);
  Setup per_epoch;
  per_epoch.adam.set_lr(2e-4f);
  per_epoch.hyper.set_number("ista-epsilon", epsilon);
  for (uint64_t i = 0; i < 4; ++i) {
    per_step.step(i);
    per_epoch.step(i);
  }
  per_epoch.end_epoch(0);
  // Only if no support changed does the per-step rule fire: it did here.
  CHECK(sparse_codes(per_step.arch).codes_frozen);
  CHECK_FALSE(sparse_codes(per_epoch.arch).codes_frozen);
  for (const SparseNode& n : sparse_codes(per_epoch.arch).nodes) CHECK_FALSE(n.frozen);
}

TEST_CASE("ista-onestage: each node freezes on its own, its b stays, its ops' BNs train") {
  Setup s;
  s.adam.set_lr(2e-4f);
  // Codes of order 1 (the init draws them ~1e-3): supports that small steps do not change.
  for (Var& b : sparse_codes(s.arch).codes)
    for (int64_t i = 0; i < b.value().numel(); ++i) b.value().data()[i] *= 1000.0f;
  recover_all(s.graph, s.arch, sparse_code_options(s.hyper).lasso);
  for (SparseNode& n : sparse_codes(s.arch).nodes) {
    n.z_checked = n.z;
    n.support_checked = n.support;
  }
  for (uint64_t i = 0; i < 4; ++i) s.step(i);
  // The two nodes' movements over the epoch; freeze exactly the one that moved less.
  const SparseCodes& sparse = sparse_codes(s.arch);
  std::vector<double> moved;
  for (const SparseNode& n : sparse.nodes) {
    double change = 0;
    for (size_t i = 0; i < n.z.size(); ++i)
      change += (n.z[i] - n.z_checked[i]) * (n.z[i] - n.z_checked[i]);
    moved.push_back(std::sqrt(change));
  }
  REQUIRE(moved.size() == 2);
  REQUIRE(moved[0] != moved[1]);
  const size_t still = moved[0] < moved[1] ? 0 : 1, moving = 1 - still;
  s.hyper.set_number("ista-epsilon", std::sqrt(moved[0] * moved[1]));
  const std::vector<int32_t> support = sparse.nodes[still].support;
  INFO("moved " << moved[0] << ", " << moved[1]);
  REQUIRE(support == sparse.nodes[still].support_checked);  // no support change this epoch
  s.end_epoch(0);
  REQUIRE(sparse.nodes[still].frozen);
  REQUIRE_FALSE(sparse.nodes[moving].frozen);
  CHECK_FALSE(sparse.codes_frozen);
  auto code = [&](size_t j) {
    const SparseNode& n = sparse.nodes[j];
    const float* b = sparse.codes[size_t(n.group)].value().data() + n.offset;
    return std::vector<float>(b, b + n.m);
  };
  const std::vector<float> frozen_b = code(still), moving_b = code(moving);
  CHECK(all_at_init(s.node_affine(sparse.nodes[still])));
  for (uint64_t i = 4; i < 8; ++i) s.step(i);
  CHECK(code(still) == frozen_b);                                // exactly as it froze
  CHECK(code(moving) != moving_b);                               // still searching
  CHECK(sparse.nodes[still].support == support);                 // not re-recovered
  CHECK_FALSE(all_at_init(s.node_affine(sparse.nodes[still])));  // its ops' BNs train
  CHECK(all_at_init(s.node_affine(sparse.nodes[moving])));       // b alone scales these
}

TEST_CASE("ista-onestage: lr constant while searching, then cosine over the remaining epochs") {
  Setup s;
  const Algorithm& a = find_algorithm("ista-onestage");
  const LoopOptions loop{.epochs = 10, .lr = 0.1f, .lr_min = 0.0f};
  for (int64_t e : {0, 3, 9}) CHECK(a.weight_lr(s.arch, s.hyper, loop, e) == 0.1f);
  SparseCodes& sparse = sparse_codes(s.arch);
  sparse.codes_frozen = true;
  sparse.frozen_epoch = 4;  // epochs 4..9 train: cosine over 6 epochs
  CHECK(a.weight_lr(s.arch, s.hyper, loop, 3) == 0.1f);
  CHECK(a.weight_lr(s.arch, s.hyper, loop, 4) == doctest::Approx(0.1));
  CHECK(a.weight_lr(s.arch, s.hyper, loop, 7) == doctest::Approx(0.05));  // half-way
  CHECK(a.weight_lr(s.arch, s.hyper, loop, 9) ==
        doctest::Approx(0.05 * (1 + std::cos(M_PI * 5 / 6))));
  // The earlier rule: cosine over the whole run.
  s.hyper.set_choice("ista-termination", "step");
  CHECK(a.weight_lr(s.arch, s.hyper, loop, 5) == doctest::Approx(0.05));
}
