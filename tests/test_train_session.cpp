// The fixed-network trainer as a library (algorithms/train_session.h) on the shared run loop:
// a resumed session is bit-identical to an uninterrupted one, the records carry what the
// training graph has (auxiliary loss, drop-path), and the loop's totals and timing follow
// the epoch.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/train_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/tensor/random.h"
#include "spec/evaluation_network.h"
#include "spec/parse.h"
#include "tests/support/bits.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

// DARTS_V2 as 3 cells at C = 4 (two reductions: the auxiliary head has its input).
spec::Space small_network() {
  spec::Space s = spec::evaluation_network(
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/networks/darts_v2.json"), 3,
      4);
  s.network.in_channels = 1;
  s.network.in_height = s.network.in_width = 8;
  s.network.classes = 3;
  return s;
}

Dataset tiny_data(int64_t n) {
  Rng rng(23);
  Dataset d;
  d.images = normal_tensor({n, 1, 8, 8}, 0, 1, rng);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(int32_t(rng.below(3)));
  d.num_classes = 3;
  d.name = "random";
  return d;
}

// 12 images, batch 4: 3 steps per epoch.
TrainOptions options() {
  return TrainOptions{.epochs = 3,
                      .batch_size = 4,
                      .seed = 2,
                      .log_every = 2,
                      .lr = 0.05f,
                      .drop_path_prob = 0.3f,
                      .auxiliary_weight = 0.4f};
}

struct Trainer {
  TrainSession session{small_network(), tiny_data(12), options()};
  std::vector<RunRecord> records;
  Trainer() {
    session.set_record_callback([this](const RunRecord& r) { records.push_back(r); });
  }
  void steps(int n) {
    for (int i = 0; i < n; ++i) session.step();
  }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  return testing::same_bits(x, y);
}

}  // namespace

TEST_CASE("train session: a resumed session is bit-identical to an uninterrupted one") {
  for (int split : {2, 3, 4}) {
    CAPTURE(split);
    Trainer whole;
    whole.steps(7);
    Trainer first;
    first.steps(split);
    const io::Checkpoint ckpt = first.session.checkpoint();
    Trainer second;
    second.session.restore(ckpt);
    CHECK(second.session.global_step() == split);
    second.steps(7 - split);
    const io::Checkpoint a = whole.session.checkpoint(), b = second.session.checkpoint();
    REQUIRE(a.tensors().size() == b.tensors().size());
    for (size_t i = 0; i < a.tensors().size(); ++i) {
      CAPTURE(a.tensors()[i].first);
      CHECK(same_bits(a.tensors()[i].second, b.tensors()[i].second));
    }
    for (const auto& [key, value] : a.metadata())
      if (key != "elapsed") CHECK(b.meta(key) == value);
    std::vector<RunRecord> resumed = first.records;
    resumed.insert(resumed.end(), second.records.begin(), second.records.end());
    REQUIRE(resumed.size() == whole.records.size());
    for (size_t i = 0; i < resumed.size(); ++i) {
      CHECK(resumed[i].kind == whole.records[i].kind);
      CHECK(resumed[i].train_loss == whole.records[i].train_loss);
      CHECK(resumed[i].aux_loss == whole.records[i].aux_loss);
      CHECK(resumed[i].drop_path == whole.records[i].drop_path);
    }
  }
}

TEST_CASE("train session: records carry the auxiliary loss and the epoch's drop-path rate") {
  Trainer t;
  t.steps(9);
  CHECK(t.session.finished());
  // Logs at steps 2, 4, 6, 8; epoch ends at 3, 6, 9.
  REQUIRE(t.records.size() == 7);
  std::vector<double> drop;
  for (const RunRecord& r : t.records) {
    CHECK(!r.has_validation);
    REQUIRE(r.aux_loss.has_value());
    CHECK(*r.aux_loss > 0);
    // The total loss includes 0.4 x the auxiliary cross-entropy.
    CHECK(r.train_loss > 0.4 * *r.aux_loss);
    if (r.kind == RunRecord::Kind::epoch) drop.push_back(*r.drop_path);
    CHECK(r.seconds_per_step > 0);
  }
  // Epoch e uses 0.3 * e / 3.
  REQUIRE(drop.size() == 3);
  CHECK(drop[0] == 0.0);
  CHECK(drop[1] == doctest::Approx(0.1));
  CHECK(drop[2] == doctest::Approx(0.2));
  CHECK_THROWS_AS(t.session.set_epochs(2), Error);
}
