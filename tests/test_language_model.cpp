// Language models in the sessions (algorithms/search_session.h, train_session.h): the hidden
// state carried from one window to the next (truncated BPTT) checked against one longer
// window, the state starting over at each epoch, exact resume with both streams' states,
// a model that learns a repetitive corpus, and the algorithms that refuse recurrent cells.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/data_shape.h"
#include "algorithms/search_session.h"
#include "algorithms/train_session.h"
#include "engine/data/corpus.h"
#include "engine/data/token_batches.h"
#include "engine/error.h"
#include "engine/sched/executor.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/errors.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

using testing::error_of;
using testing::has;
using testing::TempDir;

// A fixed recurrent cell (two nodes) or its search space, T tokens per window, H units, no
// dropout, a vocabulary fitted by the caller.
std::string rnn_spec(bool search, int64_t steps, int64_t hidden, int64_t vocabulary,
                     bool with_none = true) {
  const std::string n1 = search ? R"({"name": "n1", "from": ["s0"], "ops": "rnn", "keep": 1})"
                                : R"({"name": "n1", "edges": [{"from": "s0", "op": "tanh"}]})";
  const std::string n2 = search ? R"({"name": "n2", "from": ["s0", "n1"], "ops": "rnn", "keep": 1})"
                                : R"({"name": "n2", "edges": [{"from": "n1", "op": "sigmoid"}]})";
  return std::string(R"({"format": 1, "name": "lm",)") +
         (search ? std::string(R"("op_sets": {"rnn": [)") + (with_none ? R"("none", )" : "") +
                       R"("tanh", "relu", "sigmoid", "identity"]},)"
                 : "") +
         R"("cells": [{"name": "rnn", "kind": "recurrent", "steps": 2, "inputs": ["s0"],
             "nodes": [)" +
         n1 + ", " + n2 + R"(], "output": {"concat": ["n1", "n2"]}}],
           "network": {"input": [)" +
         std::to_string(steps) + R"(], "classes": )" + std::to_string(vocabulary) +
         R"(, "body": [{"cell": "rnn", "channels": )" + std::to_string(hidden) +
         R"(}], "head": [{"op": "linear"}]}})";
}

spec::Space rnn_space(bool search, int64_t steps, int64_t hidden, int64_t vocabulary,
                      bool with_none = true) {
  return spec::parse_string(rnn_spec(search, steps, hidden, vocabulary, with_none), "lm.json");
}

// A PTB-format corpus: `line` repeated `repeat` times in each split.
Corpus ptb_corpus(const TempDir& dir, const std::string& line, int repeat) {
  for (const char* split : {"train", "valid", "test"}) {
    std::ofstream out(dir.path / (std::string("ptb.") + split + ".txt"));
    for (int i = 0; i < repeat; ++i) out << line << "\n";
  }
  return load_corpus("ptb:" + dir.path.string());
}

std::unique_ptr<BatchSource> windows(const std::vector<int32_t>& tokens, int64_t streams,
                                     int64_t steps) {
  return std::make_unique<TokenBatches>(
      tokens, TokenBatchOptions{.streams = streams, .steps = steps}, "test");
}

bool same_values(const ir::ParameterStore& a, const ir::ParameterStore& b) {
  if (a.all().size() != b.all().size()) return false;
  for (size_t i = 0; i < a.all().size(); ++i)
    if (a.all()[i].value().to_vector() != b.all()[i].value().to_vector()) return false;
  return true;
}

// Mean cross-entropy of positions [from, to) of logits [N, T, V] against labels [N, T].
double window_loss(const Tensor& logits, const Tensor& labels, int64_t from, int64_t to) {
  const std::vector<float> l = logits.to_vector(), y = labels.to_vector();
  const int64_t n = logits.dim(0), t = logits.dim(1), v = logits.dim(2);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = from; p < to; ++p) {
      const float* row = &l[size_t((i * t + p) * v)];
      double top = row[0], z = 0;
      for (int64_t k = 1; k < v; ++k) top = std::max(top, double(row[k]));
      for (int64_t k = 0; k < v; ++k) z += std::exp(double(row[k]) - top);
      sum += top + std::log(z) - double(row[int64_t(y[size_t(i * t + p)])]);
    }
  return sum / double(n * (to - from));
}

}  // namespace

TEST_CASE("language model: two windows of T with the state carried are one window of 2T") {
  // Training with lr 0 leaves the weights alone, so the losses of the first two steps are
  // those of the first two windows of each stream, the second started from the first's
  // final state. One window of 2T over the same tokens, from zeros, must give the same two
  // halves: that is what carrying the state means (without it the second half differs).
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a c e b d f", 6);
  const int64_t vocabulary = corpus.vocabulary.size(), streams = 2, steps = 4;
  const spec::Space short_net = rnn_space(false, steps, 5, vocabulary);
  TrainSession session(short_net, windows(corpus.train, streams, steps),
                       TrainOptions{.epochs = 1,
                                    .batch_size = streams,
                                    .lr = 0.0f,
                                    .lr_min = 0.0f,
                                    .momentum = 0.0f,
                                    .weight_decay = 0.0f,
                                    .grad_clip = 0.0f});
  std::vector<double> step_losses;
  session.set_record_callback([&](const RunRecord&) {});
  for (int s = 0; s < 2; ++s) {
    const double before = session.snapshot().train_loss * double(s);
    session.step();
    step_losses.push_back(session.snapshot().train_loss * double(s + 1) - before);
  }

  const spec::Space long_net = rnn_space(false, 2 * steps, 5, vocabulary);
  const ir::Graph graph = spec::compile(long_net);
  const ir::ParameterStore params(graph, 0);
  REQUIRE(params.all().size() == session.params().all().size());
  for (size_t i = 0; i < params.all().size(); ++i)
    params.all()[i].value().copy_from(session.params().all()[i].value());
  TokenBatches long_windows(corpus.train, TokenBatchOptions{.streams = streams, .steps = 2 * steps},
                            "long");
  const Batch both = long_windows.next();
  const sched::RunOutputs out =
      sched::run_outputs(graph, params, sched::make_plan(graph, sched::all_active(graph)),
                         Var(both.images), sched::RunOptions{.training = true});
  CHECK(window_loss(out.logits.value(), both.labels, 0, steps) ==
        doctest::Approx(step_losses[0]).epsilon(1e-5));
  CHECK(window_loss(out.logits.value(), both.labels, steps, 2 * steps) ==
        doctest::Approx(step_losses[1]).epsilon(1e-5));
  // The state matters: from zeros, the second window scores differently.
  TokenBatches short_windows(corpus.train, TokenBatchOptions{.streams = streams, .steps = steps},
                             "short");
  short_windows.next();
  const Batch second = short_windows.next();
  const ir::Graph short_graph = spec::compile(short_net);
  const sched::RunOutputs fresh = sched::run_outputs(
      short_graph, session.params(), sched::make_plan(short_graph, sched::all_active(short_graph)),
      Var(second.images), sched::RunOptions{.training = true});
  CHECK(std::abs(window_loss(fresh.logits.value(), second.labels, 0, steps) - step_losses[1]) >
        1e-4);
}

TEST_CASE("language model: evaluation carries the state over the whole split, from zeros") {
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a c e b d f", 4);
  const int64_t vocabulary = corpus.vocabulary.size();
  const spec::Space net = rnn_space(false, 3, 4, vocabulary);
  const ir::Graph graph = spec::compile(net);
  const ir::ParameterStore params(graph, 7);
  auto stream = windows(corpus.test, 1, 3);
  const int64_t batches = stream->batches_per_epoch();
  const EvalResult carried = evaluate(graph, params, *stream);
  CHECK(carried.count == batches * 3);
  // The same split as one window (T = 3 * batches) from zeros: the same mean loss.
  const spec::Space whole = rnn_space(false, 3 * batches, 4, vocabulary);
  const ir::Graph whole_graph = spec::compile(whole);
  const ir::ParameterStore whole_params(whole_graph, 7);
  CHECK(same_values(params, whole_params));
  auto one = windows(corpus.test, 1, 3 * batches);
  const EvalResult single = evaluate(whole_graph, whole_params, *one);
  CHECK(single.count == carried.count);
  CHECK(single.loss == doctest::Approx(carried.loss).epsilon(1e-5));
}

TEST_CASE("language model: a search resumes bit-identically, both streams' states included") {
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a c e b d f b a", 8);
  for (const char* algo : {"darts", "darts2", "milenas", "nasp", "sparsenas", "ista", "rarts"}) {
    CAPTURE(algo);
    // SparseNAS expresses zero by A = 0: its op sets have no `none`.
    const spec::Space space =
        rnn_space(true, 3, 4, corpus.vocabulary.size(), std::string(algo) != "sparsenas");
    SearchOptions options{.algorithm = algo, .epochs = 2, .batch_size = 2, .log_every = 0};
    if (std::string(algo) == "sparsenas") {
      // A penalty small enough that a tiny cell keeps a path to derive.
      options.hyper = find_algorithm(algo).default_hyperparameters();
      options.hyper.set_number("sparsenas-lambda", 1e-6);
      options.hyper.set_number("sparsenas-lambda-step", 0);
    }
    auto make = [&] {
      return std::make_unique<SearchSession>(space, windows(corpus.train, 2, 3),
                                             windows(corpus.valid, 2, 3), options);
    };
    auto straight = make();
    REQUIRE(straight->steps_per_epoch() >= 3);
    for (int s = 0; s < 2; ++s) straight->step();
    const io::Checkpoint ckpt = straight->checkpoint();
    REQUIRE(ckpt.find("state/train") != nullptr);
    REQUIRE(ckpt.find("state/val") != nullptr);
    CHECK(ckpt.find("state/train")->shape() == Shape{2, 4});
    auto resumed = make();
    resumed->restore(ckpt);
    while (!straight->finished()) straight->step();
    while (!resumed->finished()) resumed->step();
    CHECK(same_values(straight->params(), resumed->params()));
    CHECK(straight->arch().logits[0].value().to_vector() ==
          resumed->arch().logits[0].value().to_vector());
    CHECK(straight->snapshot().val_loss == resumed->snapshot().val_loss);
    CHECK(std::isfinite(straight->snapshot().train_loss));
    // Derivation gives a fixed recurrent cell (one edge per node) that compiles.
    const Derived derived = straight->derive();
    CHECK(derived.space.is_fixed());
    CHECK_NOTHROW(spec::compile(derived.space));
  }
}

TEST_CASE("language model: a resumed training run restores the state it had mid-epoch") {
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a c e b d f b a", 8);
  const spec::Space net = rnn_space(false, 3, 4, corpus.vocabulary.size());
  const TrainOptions options{.epochs = 2,
                             .batch_size = 2,
                             .log_every = 0,
                             .lr = 1.0f,
                             .lr_min = 1.0f,
                             .momentum = 0.0f,
                             .grad_clip = 0.25f};
  TrainSession straight(net, windows(corpus.train, 2, 3), options);
  straight.step();
  straight.step();
  const io::Checkpoint ckpt = straight.checkpoint();
  REQUIRE(ckpt.find("state/train") != nullptr);
  TrainSession resumed(net, windows(corpus.train, 2, 3), options);
  resumed.restore(ckpt);
  // Without the state the next step would start from zeros and differ.
  io::Checkpoint stateless;
  for (const auto& [key, value] : ckpt.metadata()) stateless.set_meta(key, value);
  for (const auto& [name, t] : ckpt.tensors())
    if (name != "state/train") stateless.add(name, t);
  TrainSession forgetful(net, windows(corpus.train, 2, 3), options);
  forgetful.restore(stateless);
  straight.step();
  resumed.step();
  forgetful.step();
  CHECK(same_values(straight.params(), resumed.params()));
  CHECK(!same_values(straight.params(), forgetful.params()));

  // A damaged state is refused by name, not carried into the run as NaN.
  io::Checkpoint damaged;
  damaged.set_source("run/checkpoint.bin");
  for (const auto& [key, value] : ckpt.metadata()) damaged.set_meta(key, value);
  for (const auto& [name, t] : ckpt.tensors()) {
    const Tensor copy = t.clone();
    if (name == "state/train") copy.fill(std::nanf(""));
    damaged.add(name, copy);
  }
  TrainSession victim(net, windows(corpus.train, 2, 3), options);
  const std::string e = error_of([&] { victim.restore(damaged); });
  CHECK(has(e, "run/checkpoint.bin: entry 'state/train' holds inf or NaN"));
}

TEST_CASE("language model: learns a repetitive corpus to a perplexity far under its vocabulary") {
  // Six words in a fixed cycle: after a word the next is certain, so a model that learns
  // the cycle approaches perplexity 1; a uniform guess scores the vocabulary size (8 with
  // <unk> and <eos>).
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a b c d e f", 40);
  const int64_t vocabulary = corpus.vocabulary.size();
  const spec::Space net = rnn_space(false, 8, 16, vocabulary);
  TrainSession session(net, windows(corpus.train, 4, 8),
                       TrainOptions{.epochs = 20,
                                    .batch_size = 4,
                                    .log_every = 0,
                                    .lr = 5.0f,
                                    .lr_min = 5.0f,
                                    .momentum = 0.0f,
                                    .weight_decay = 0.0f,
                                    .grad_clip = 0.25f});
  const ir::ParameterStore initial(session.graph(), 0);
  auto before_stream = windows(corpus.valid, 1, 8);
  const double before = std::exp(evaluate(session.graph(), initial, *before_stream).loss);
  while (!session.finished()) session.step();
  auto after_stream = windows(corpus.valid, 1, 8);
  const double after = std::exp(evaluate(session.graph(), session.params(), *after_stream).loss);
  MESSAGE("valid perplexity ", before, " -> ", after, " (vocabulary ", vocabulary, ")");
  CHECK(before > 0.75 * double(vocabulary));
  CHECK(after < 1.5);
}

TEST_CASE("language model: ista-onestage refuses a recurrent cell, naming why") {
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a c e b d f b a", 8);
  const spec::Space space = rnn_space(true, 3, 4, corpus.vocabulary.size());
  const std::string e = error_of([&] {
    SearchSession(space, windows(corpus.train, 2, 3), nullptr,
                  SearchOptions{.algorithm = "ista-onestage", .train_fraction = 1.0});
  });
  CHECK(has(e, "lm.json"));
  CHECK(has(e, "ista-onestage cannot search it"));
  CHECK(has(e, "batch norm"));
}

TEST_CASE("language model: the shipped recurrent spaces search two steps and derive") {
  // darts_rnn.json with DARTS, darts_rnn_sparsenas.json (no `none`) with SparseNAS: each
  // at its own sizes (T = 35, 64 units) on a small corpus, its vocabulary fitted.
  TempDir dir;
  const Corpus corpus = ptb_corpus(dir, "a b c d e f a c e b d f b a", 30);
  for (const std::pair<const char*, const char*>& run :
       {std::pair<const char*, const char*>{"darts_rnn.json", "darts"},
        {"darts_rnn_sparsenas.json", "sparsenas"}}) {
    const char* const file = run.first;
    const char* const algo = run.second;
    CAPTURE(file);
    spec::Space space =
        spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/spaces/" + file);
    fit_space_to_data(space, vocabulary_shape(corpus.vocabulary.size()));
    const int64_t steps = space.network.sequence_length;
    SearchSession session(
        space, windows(corpus.train, 2, steps), windows(corpus.valid, 2, steps),
        SearchOptions{
            .algorithm = algo, .epochs = 1, .batch_size = 2, .max_steps = 2, .log_every = 0});
    while (!session.finished()) session.step();
    CHECK(std::isfinite(session.snapshot().val_loss));
    const Derived derived = session.derive();
    CHECK(derived.space.is_fixed());
    CHECK(derived.space.cells[0].nodes.size() == 8);
    CHECK_NOTHROW(spec::compile(derived.space));
  }
}
