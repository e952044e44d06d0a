// The search loop as a library: a run interrupted by a checkpoint and resumed in a new
// session ends bit-identical to one that never stopped (weights, architecture, optimizer
// state, metrics), for every algorithm.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/data_shape.h"
#include "algorithms/search_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/tensor/random.h"
#include "spec/parse.h"
#include "tests/support/bits.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

using testing::kTinySpace;

Dataset tiny_data(int64_t n) {
  Rng rng(17);
  Dataset d;
  d.images = normal_tensor({n, 1, 8, 8}, 0, 1, rng);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(int32_t(rng.below(3)));
  d.num_classes = 3;
  d.name = "random";
  return d;
}

SearchOptions options(const std::string& algo) {
  // 24 items: 12 per side, batch 4 -> 3 steps per epoch; 6 steps cross an epoch end.
  SearchOptions o{.algorithm = algo,
                  .epochs = 3,
                  .batch_size = 4,
                  .seed = 5,
                  .log_every = 2,
                  .lr = 0.1f,
                  .arch_lr = 0.01f};
  // SparseNAS: a lambda that zeroes part of A within these steps, so the resumed steps run
  // a sparse supernet.
  if (algo == "sparsenas") {
    o.hyper = find_algorithm(algo).default_hyperparameters();
    o.hyper.set_number("sparsenas-lambda", 0.02);
  }
  return o;
}

// One-stage ISTA-NAS needs every edge op closed by a BN; SparseNAS refuses `none`.
std::string space_for(const std::string& algo) {
  std::string s = algo == "sparsenas" ? testing::tiny_space_without_none() : kTinySpace;
  const std::string at = "\"classes\": 3,";
  if (algo == "ista-onestage") s.replace(s.find(at), at.size(), at + " \"edge_bn\": true,");
  return s;
}

struct TinyRun {
  SearchSession session;
  std::vector<RunRecord> records;
  explicit TinyRun(const std::string& algo)
      : session(spec::parse_string(space_for(algo), "tiny.json"), tiny_data(24), options(algo)) {
    session.set_record_callback([this](const RunRecord& r) { records.push_back(r); });
  }
  void steps(int n) {
    for (int i = 0; i < n; ++i) session.step();
  }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  return testing::same_bits(x, y);
}

// Every tensor and every metadata value but the wall-clock time.
void check_identical(const io::Checkpoint& a, const io::Checkpoint& b) {
  REQUIRE(a.tensors().size() == b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    CAPTURE(a.tensors()[i].first);
    CHECK(a.tensors()[i].first == b.tensors()[i].first);
    CHECK(same_bits(a.tensors()[i].second, b.tensors()[i].second));
  }
  for (const auto& entry : a.metadata()) {
    const std::string& key = entry.first;
    const std::string& value = entry.second;
    if (key == "elapsed") continue;
    CAPTURE(key);
    CHECK(b.meta(key) == value);
  }
}

void check_same_metrics(const RunRecord& a, const RunRecord& b) {
  CHECK(a.kind == b.kind);
  CHECK(a.epoch == b.epoch);
  CHECK(a.step == b.step);
  // Exact: the epoch's sums travel through the checkpoint unrounded.
  CHECK(a.train_loss == b.train_loss);
  CHECK(a.val_loss == b.val_loss);
  CHECK(a.train_accuracy == b.train_accuracy);
  CHECK(a.val_accuracy == b.val_accuracy);
  CHECK(a.lr == b.lr);
  CHECK(spec::dump(a.details) == spec::dump(b.details));  // genotype, argmax, supports
}

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("cellgraph_search_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

}  // namespace

TEST_CASE("search: a resumed session is bit-identical to an uninterrupted one") {
  for (const Algorithm* algorithm : algorithms::algorithms()) {  // every registered one
    const std::string algo = algorithm->name();
    for (int split : {2, 3}) {  // inside an epoch, and at an epoch's end
      CAPTURE(algo);
      CAPTURE(split);
      TinyRun whole(algo);
      whole.steps(6);

      TinyRun first(algo);
      first.steps(split);
      const std::string path = temp_file(algo + std::to_string(split) + ".bin");
      io::save_checkpoint(first.session.checkpoint(), path);
      TinyRun second(algo);  // a new session, as a new process would build it
      second.session.restore(io::load_checkpoint(path));
      std::filesystem::remove(path);
      CHECK(second.session.global_step() == split);
      second.steps(6 - split);

      check_identical(whole.session.checkpoint(), second.session.checkpoint());
      std::vector<RunRecord> resumed = first.records;
      resumed.insert(resumed.end(), second.records.begin(), second.records.end());
      REQUIRE(resumed.size() == whole.records.size());
      REQUIRE(whole.records.size() == 5);  // logs at 2, 4, 6; epoch ends at 3, 6
      for (size_t i = 0; i < resumed.size(); ++i) check_same_metrics(whole.records[i], resumed[i]);
      CHECK(whole.session.derive().genotype == second.session.derive().genotype);
      // The optimizer state really moved (the comparison above is not of zeros). NASP and
      // SparseNAS step A themselves (a projected gradient step, HAPG), not by Adam.
      if (algo != "nasp" && algo != "sparsenas")
        CHECK(whole.session.arch_optimizer().step_count(0) == 6);
      else
        CHECK(!same_bits(whole.session.arch().logits[0].value(),
                         TinyRun(algo).session.arch().logits[0].value()));
      if (algo == "sparsenas") {  // part of A is zero, part is not
        int64_t zeros = 0;
        const std::vector<float> a = whole.session.arch().logits[0].value().to_vector();
        for (float v : a) zeros += v == 0.0f;
        MESSAGE("sparsenas: ", zeros, " of ", a.size(), " entries of A are zero after 6 steps");
        CHECK(zeros > 0);
        CHECK(zeros < int64_t(a.size()));
      }
      CHECK(whole.session.weight_optimizer().step_count(0) == 6);
    }
  }
}

TEST_CASE("search: epochs, max-steps, the schedule and derivation from a checkpoint") {
  TinyRun run("darts");
  CHECK(run.session.steps_per_epoch() == 3);
  CHECK(run.session.planned_steps() == 9);
  run.session.set_max_steps(4);
  run.session.run();
  CHECK(run.session.global_step() == 4);
  CHECK(run.session.finished());
  CHECK(run.session.epoch() == 1);
  // Cosine per epoch: epoch 1 of 3 at lr = 0.001 + (0.1 - 0.001) * (1 + cos(pi/3)) / 2.
  CHECK(run.session.current_lr() == doctest::Approx(0.001 + 0.099 * 0.75));
  CHECK_THROWS_WITH_AS(run.session.set_epochs(1), doctest::Contains("already begun 2 epochs"),
                       Error);
  run.session.set_epochs(5);
  CHECK(run.session.finished());  // max_steps still holds
  run.session.set_max_steps(0);
  CHECK(run.session.planned_steps() == 15);
  const Derived from_ckpt = derive_from_checkpoint(run.session.space(), run.session.checkpoint());
  CHECK(from_ckpt.genotype == run.session.derive().genotype);
  CHECK(run.records.back().kind == RunRecord::Kind::log);
  CHECK(run.records.back().step == 4);
}

TEST_CASE("search: restoring a checkpoint of another run is a named error") {
  TinyRun darts("darts");
  darts.steps(1);
  io::Checkpoint ckpt = darts.session.checkpoint();
  ckpt.set_source("run/checkpoint.bin");
  TinyRun other("darts2");
  CHECK_THROWS_WITH_AS(other.session.restore(ckpt),
                       "run/checkpoint.bin: checkpoint of algorithm 'darts', the run uses 'darts2'",
                       Error);
  io::Checkpoint missing;
  missing.set_source("run/checkpoint.bin");
  for (const auto& [key, value] : ckpt.metadata()) missing.set_meta(key, value);
  for (const auto& [name, t] : ckpt.tensors())
    if (name != "param/cells.0.a.e1.sep_conv_3x3.0.dw.weight") missing.add(name, t);
  TinyRun again("darts");
  CHECK_THROWS_WITH_AS(
      again.session.restore(missing),
      "run/checkpoint.bin: missing entry 'param/cells.0.a.e1.sep_conv_3x3.0.dw.weight'", Error);
  // The data decide the steps per epoch; another data size cannot continue the run.
  SearchSession bigger(spec::parse_string(kTinySpace, "tiny.json"), tiny_data(48),
                       options("darts"));
  CHECK_THROWS_WITH_AS(bigger.restore(ckpt), doctest::Contains("3 steps per epoch, this run has 6"),
                       Error);
}

TEST_CASE("search: a space is fitted to the data's input and classes") {
  spec::Space space = spec::parse_string(kTinySpace, "tiny.json");
  CHECK(fit_space_to_data(space, {1, 8, 8, 3}).empty());
  const std::string note = fit_space_to_data(space, {3, 16, 16, 10});
  CHECK(note.find("the data has [3, 16, 16] with 10 classes") != std::string::npos);
  CHECK(space.network.in_channels == 3);
  CHECK(space.network.classes == 10);
}

TEST_CASE("search: without a validation step the weights may train on the whole set") {
  SearchOptions one = options("ista-onestage");
  one.train_fraction = 1.0;
  SearchSession whole(spec::parse_string(space_for("ista-onestage"), "tiny.json"), tiny_data(24),
                      one);
  CHECK(whole.steps_per_epoch() == 6);  // 24 images, batch 4: no half held out
  whole.step();
  CHECK(whole.snapshot().train_loss > 0);
  CHECK(!whole.checkpoint().has_meta("val_position"));
  // An older one-stage run's split (fraction 0.5) still builds: 3 steps per epoch.
  TinyRun older("ista-onestage");
  CHECK(older.session.steps_per_epoch() == 3);
  // An algorithm with a validation step needs one.
  SearchOptions darts = options("darts");
  darts.train_fraction = 1.0;
  CHECK_THROWS_WITH_AS(
      SearchSession(spec::parse_string(kTinySpace, "tiny.json"), tiny_data(24), darts),
      "search: train fraction must be in (0, 1) for darts, got 1", Error);
}

TEST_CASE("search: every record carries each group's architecture weights as ranked") {
  for (const std::string algo : {"darts", "darts2", "milenas", "nasp", "ista", "ista-onestage"}) {
    CAPTURE(algo);
    TinyRun run(algo);
    // What the algorithm ranks at the moment each record is made.
    std::vector<std::vector<std::vector<float>>> ranked;
    std::vector<std::vector<std::vector<float>>> logits;
    run.session.set_record_callback([&](const RunRecord& r) {
      run.records.push_back(r);
      ranked.push_back(coefficient_values(run.session.arch()));
      std::vector<std::vector<float>> l;
      for (const Var& v : run.session.arch().logits) l.push_back(v.value().to_vector());
      logits.push_back(l);
    });
    run.steps(6);
    REQUIRE(run.records.size() == 5);  // logs at 2, 4, 6; epoch ends at 3, 6
    const ir::Graph& graph = run.session.graph();
    for (size_t i = 0; i < run.records.size(); ++i) {
      CAPTURE(i);
      const spec::JsonValue* weights = run.records[i].details.find("arch_weights");
      REQUIRE(weights != nullptr);
      REQUIRE(weights->size() == graph.arch_groups.size());
      for (size_t g = 0; g < graph.arch_groups.size(); ++g) {
        const ir::ArchGroup& group = graph.arch_groups[g];
        const auto& [name, entry] = weights->members()[g];
        CHECK(name == group.name);
        CHECK(entry.find("kind")->as_string() == "ops");
        const std::vector<spec::JsonValue>& columns = entry.find("columns")->items();
        const std::vector<spec::JsonValue>& rows = entry.find("rows")->items();
        const std::vector<spec::JsonValue>& values = entry.find("values")->items();
        REQUIRE(columns.size() == group.columns.size());
        for (size_t c = 0; c < columns.size(); ++c)
          CHECK(columns[c].as_string() == group.columns[c]);
        REQUIRE(rows.size() == size_t(group.rows));
        REQUIRE(values.size() == size_t(group.rows));
        const size_t cols = columns.size();
        for (size_t r = 0; r < rows.size(); ++r) {
          CHECK(rows[r].as_string() == group.row_labels[r]);
          REQUIRE(values[r].size() == cols);
          double sum = 0, softmax_sum = 0;
          for (size_t c = 0; c < cols; ++c) softmax_sum += std::exp(logits[i][g][r * cols + c]);
          for (size_t c = 0; c < cols; ++c) {
            const float v = float(values[r].items()[c].as_double());
            CHECK(v == ranked[i][g][r * cols + c]);  // exact: the shortest decimal reads back
            sum += v;
            if (algo == "darts" || algo == "darts2" || algo == "milenas")
              CHECK(v == doctest::Approx(std::exp(logits[i][g][r * cols + c]) / softmax_sum));
            if (algo == "nasp") CHECK(v == logits[i][g][r * cols + c]);  // A itself
          }
          if (algo == "darts" || algo == "darts2" || algo == "milenas")
            CHECK(sum == doctest::Approx(1.0));
        }
      }
    }
    // The weights moved between the first record and the last.
    CHECK(spec::dump(*run.records.front().details.find("arch_weights")) !=
          spec::dump(*run.records.back().details.find("arch_weights")));
  }
}
