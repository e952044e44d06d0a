// ONNX export of a recurrent language model checked by onnxruntime: the whole model (a Scan
// over the time step) must reproduce cellgraph's eval-mode logits and final state within
// 1e-4, at the spec's T and at another T; the exported cell (one time step), fed the
// embedded tokens step by step, must reproduce the unrolled graph's state; `cellgraph export`
// of a language model's train run writes both with its trained weights. As in test_onnx.cpp,
// a missing venv fails these tests and says to run scripts/setup.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/train_session.h"
#include "engine/data/corpus.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/npy.h"
#include "engine/sched/executor.h"
#include "engine/sched/plan.h"
#include "engine/tensor/random.h"
#include "exporters/onnx/export.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/op_tests.h"

using namespace cellgraph;
namespace oe = cellgraph::onnx_export;

namespace {
using testing::has;
using testing::max_abs_diff;
using testing::Result;
using testing::run_cli;
using testing::run_shell;
using testing::TempDir;

namespace fs = std::filesystem;
constexpr const char kPython[] = CELLGRAPH_TEST_PYTHON;
constexpr const char kRunner[] = CELLGRAPH_SOURCE_DIR "/tests/onnx/run_onnx.py";
constexpr double kTolerance = 1e-4;
constexpr int64_t kHidden = 16, kVocabulary = 50;

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The venv's python running run_onnx.py; fails the test (never skips) without the venv.
std::string run_onnx(const TempDir& dir, const std::vector<std::string>& args) {
  if (!fs::exists(kPython))
    FAIL("no Python at ", kPython,
         ": run scripts/setup to create the test venv (numpy and onnxruntime from "
         "requirements-test.txt)");
  std::string command = quote(kPython) + " " + quote(kRunner);
  for (const std::string& a : args) command += " " + quote(a);
  const Result r = run_shell(command, dir);
  if (r.status != 0) FAIL("`", command, "` exited with ", r.status, ":\n", r.out, r.err);
  return r.out;
}

// Token ids as NumPy int64 (format 1.0), what the model's "tokens" input takes.
void write_int64_npy(const std::string& path, const Tensor& ids) {
  std::string shape = "(";
  for (int d = 0; d < ids.shape().rank(); ++d) shape += std::to_string(ids.dim(d)) + ", ";
  std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': " + shape + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ').push_back('\n');
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = uint16_t(header.size());
  out.put(char(len & 0xff)).put(char(len >> 8)) << header;
  for (float v : ids.to_vector()) {
    const auto id = int64_t(v);
    char bytes[8];
    std::memcpy(bytes, &id, 8);  // little-endian, as on every platform cellgraph builds for
    out.write(bytes, 8);
  }
}

// DARTS_V2's recurrent cell at H = 16, vocabulary 50, T steps, its dropouts (embedding
// dropout included) as shipped: inference must leave them all out.
spec::Space language_model(int64_t t_steps) {
  spec::Space s = spec::parse_file(CELLGRAPH_SOURCE_DIR "/examples/networks/darts_v2_rnn.json");
  s.network.sequence_length = t_steps;
  s.network.classes = kVocabulary;
  s.network.body[0].channels = kHidden;
  return s;
}

// Trained-looking weights: the seeded ±0.04 would leave the cell near-linear and the
// logits near zero, so every weight is drawn from ±0.5.
void randomise(const ir::Graph& graph, const ir::ParameterStore& params, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < graph.params.size(); ++i) {
    const Tensor& t = params[ir::ParamId{int32_t(i)}].value();
    if (graph.params[i].name != "cells.0.mean")
      t.copy_from(uniform_tensor(graph.params[i].shape, -0.5f, 0.5f, rng));
  }
}

// The same weights in the graph of another T (the parameters do not depend on T).
void copy_weights(const ir::Graph& from, const ir::ParameterStore& source, const ir::Graph& to,
                  const ir::ParameterStore& target) {
  REQUIRE(from.params.size() == to.params.size());
  for (size_t i = 0; i < from.params.size(); ++i) {
    REQUIRE(from.params[i].name == to.params[i].name);
    const ir::ParamId id{int32_t(i)};
    target[id].value().copy_from(source[id].value());
  }
}

Tensor random_tokens(int64_t batch, int64_t t_steps, uint64_t seed) {
  Rng rng(seed);
  const std::vector<float> u = uniform_tensor({batch, t_steps}, 0.0f, 1.0f, rng).to_vector();
  std::vector<float> ids(u.size());
  for (size_t i = 0; i < u.size(); ++i)
    ids[i] = std::floor(std::min(u[i] * float(kVocabulary), kVocabulary - 1.0f));
  return Tensor::from_vector({batch, t_steps}, ids);
}

sched::RunOutputs forward(const ir::Graph& graph, const ir::ParameterStore& params,
                          const Tensor& tokens, const Tensor& h0) {
  NoGradGuard no_grad;
  sched::RunOptions options;
  options.training = false;
  options.state = Var(h0);
  return sched::run_outputs(graph, params, sched::make_plan(graph, sched::all_active(graph)),
                            Var(tokens), options);
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, double(std::fabs(v)));
  return m;
}

// Runs the exported language model on (tokens, h0) and checks logits and final state
// against cellgraph's forward of `graph`.
void check_sequence(const TempDir& dir, const std::string& model, const ir::Graph& graph,
                    const ir::ParameterStore& params, int64_t batch, uint64_t seed) {
  const int64_t t_steps = graph.value(graph.input).shape[1];
  const Tensor tokens = random_tokens(batch, t_steps, seed);
  Rng rng(seed + 1);
  const Tensor h0 = uniform_tensor({batch, kHidden}, -0.5f, 0.5f, rng);
  const sched::RunOutputs ours = forward(graph, params, tokens, h0);
  const std::string name = "b" + std::to_string(batch) + "_t" + std::to_string(t_steps);
  write_int64_npy(dir / name + ".tokens.npy", tokens);
  io::write_npy(dir / name + ".h0.npy", h0);
  run_onnx(dir, {model, dir / name + ".tokens.npy", dir / name + ".h0.npy", dir / name + ".npy"});
  const Tensor logits = io::read_npy(dir / name + ".npy");
  const Tensor state = io::read_npy(dir / name + ".1.npy");
  REQUIRE(logits.shape() == Shape{batch, t_steps, kVocabulary});
  REQUIRE(state.shape() == Shape{batch, kHidden});
  const double logits_diff = max_abs_diff(ours.logits.value(), logits);
  const double state_diff = max_abs_diff(ours.state.value(), state);
  MESSAGE("language model, batch ", batch, ", T ", t_steps,
          ": max |cellgraph - onnxruntime| logits ", logits_diff, " (values up to ",
          max_abs(logits), "), final state ", state_diff, " (values up to ", max_abs(state), ")");
  CHECK(max_abs(logits) > 1e-2);  // near-zero values would prove nothing
  CHECK(max_abs_diff(state, h0) > 1e-2);
  CHECK(logits_diff <= kTolerance);
  CHECK(state_diff <= kTolerance);
}

}  // namespace

TEST_CASE("onnx: a language model (Scan over time) matches onnxruntime, logits and final state") {
  const ir::Graph graph = spec::compile(language_model(5));
  const ir::ParameterStore params(graph, 3);
  randomise(graph, params, 4);
  TempDir dir;
  const std::string model = dir / "lm.onnx";
  oe::export_onnx(graph, params, model, {});
  check_sequence(dir, model, graph, params, 3, 10);
  check_sequence(dir, model, graph, params, 1, 11);
  // The same model over a longer sequence: the Scan is not tied to the spec's T.
  const ir::Graph longer = spec::compile(language_model(12));
  const ir::ParameterStore longer_params(longer, 3);
  copy_weights(graph, params, longer, longer_params);
  check_sequence(dir, model, longer, longer_params, 2, 12);

  const std::string described = run_onnx(dir, {"--describe", model});
  CHECK(has(described, R"j({"name": "tokens", "shape": ["N", "T"], "type": "tensor(int64)"})j"));
  CHECK(has(described, R"j({"name": "h0", "shape": ["N", 16], "type": "tensor(float)"})j"));
  CHECK(
      has(described, R"j({"name": "logits", "shape": ["N", "T", 50], "type": "tensor(float)"})j"));
  CHECK(has(described, R"j({"name": "h_final", "shape": ["N", 16], "type": "tensor(float)"})j"));
  CHECK(has(described, R"("cellgraph.sequence_length": "5")"));
  // One step's nodes in the file, not five: the Scan body is the only copy of the cell.
  CHECK(testing::read_text(model).find("t1/") == std::string::npos);
}

TEST_CASE("onnx: a language model's cell is one time step, and chained it carries the state") {
  const ir::Graph graph = spec::compile(language_model(3));
  const ir::ParameterStore params(graph, 5);
  randomise(graph, params, 6);
  TempDir dir;
  const std::string model = dir / "cell.onnx";
  oe::export_cell_onnx(graph, params, "rnn", model, {});
  const std::string described = run_onnx(dir, {"--describe", model});
  CHECK(has(described, R"j({"name": "x_t", "shape": ["N", 16], "type": "tensor(float)"})j"));
  CHECK(has(described, R"j({"name": "h_prev", "shape": ["N", 16], "type": "tensor(float)"})j"));
  CHECK(has(described, R"j({"name": "h_t", "shape": ["N", 16], "type": "tensor(float)"})j"));

  // x_t is the embedded token: the token's row of the embedding matrix.
  const int64_t batch = 4;
  const Tensor tokens = random_tokens(batch, 3, 20);
  Rng rng(21);
  const Tensor h0 = uniform_tensor({batch, kHidden}, -0.5f, 0.5f, rng);
  const std::vector<float> table = params[ir::ParamId{0}].value().to_vector();
  REQUIRE(graph.params[0].name == "encoder.weight");
  std::string h = dir / "h0.npy";
  io::write_npy(h, h0);
  for (int64_t t = 0; t < 3; ++t) {
    std::vector<float> x;
    for (int64_t n = 0; n < batch; ++n) {
      const auto row = size_t(tokens.to_vector()[size_t(n * 3 + t)]);
      x.insert(x.end(), table.begin() + long(row * kHidden),
               table.begin() + long((row + 1) * kHidden));
    }
    const std::string xt = dir / "x" + std::to_string(t) + ".npy",
                      next = dir / "h" + std::to_string(t + 1) + ".npy";
    io::write_npy(xt, Tensor::from_vector({batch, kHidden}, x));
    run_onnx(dir, {model, xt, h, next});
    h = next;
  }
  const Tensor ours = forward(graph, params, tokens, h0).state.value();
  const double diff = max_abs_diff(ours, io::read_npy(h));
  MESSAGE("recurrent cell chained over 3 steps: max |cellgraph - onnxruntime| ", diff);
  CHECK(max_abs_diff(ours, h0) > 1e-2);
  CHECK(diff <= kTolerance);
}

TEST_CASE("onnx: a recurrent search space is refused, naming a mixed edge") {
  const ir::Graph graph =
      spec::compile(spec::parse_file(CELLGRAPH_SOURCE_DIR "/examples/spaces/darts_rnn.json"));
  const ir::ParameterStore params(graph, 1);
  TempDir dir;
  const std::string model = dir / "space.onnx";
  for (bool cell : {false, true}) {
    try {
      if (cell)
        oe::export_cell_onnx(graph, params, "rnn", model, {});
      else
        oe::export_onnx(graph, params, model, {});
      FAIL("expected an error");
    } catch (const Error& e) {
      CHECK(has(e.what(), "is a mixed edge over {none, tanh, relu, sigmoid, identity}"));
    }
  }
  CHECK_FALSE(fs::exists(model));
}

TEST_CASE("cli: export of a language model's train run: the model and its cell, trained weights") {
  TempDir dir;
  // A small corpus of 15 words and DARTS_V2's cell at H = 8, T = 6.
  const std::string corpus = dir / "corpus.txt", spec_path = dir / "lm.json";
  {
    const char* words[] = {"the", "cat", "sat",  "on",    "a",    "mat",  "and", "dog",
                           "ran", "to",  "park", "while", "bird", "sang", "home"};
    Rng rng(1);
    const std::vector<float> u = uniform_tensor({200 * 12}, 0.0f, 15.0f, rng).to_vector();
    std::ofstream out(corpus);
    for (size_t i = 0; i < u.size(); ++i)
      out << words[std::min(size_t(u[i]), size_t(14))] << (i % 12 == 11 ? "\n" : " ");
    spec::Space s = language_model(6);
    s.network.body[0].channels = 8;
    std::ofstream(spec_path) << spec::to_json(s);
  }
  const std::string data = "text:" + corpus, run = dir / "run";
  Result r = run_cli(
      "train " + spec_path + " --out " + run + " --data " + data + " --max-steps 3 --threads 1",
      dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string model = dir / "lm.onnx", cell = dir / "cell.onnx";
  r = run_cli("export " + run + " --onnx " + model, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "language model (a Scan over any T; the spec's T is 6) of " + run));
  CHECK(has(r.out, "(step 3)"));
  r = run_cli("export " + run + " --cell rnn --onnx " + cell, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "cell 'rnn' (cells.0, one time step) of " + run));
  // infer takes image classifiers only, and says so.
  io::write_npy(dir / "x.npy", Tensor::from_vector({1, 6}, std::vector<float>(6, 0.0f)));
  r = run_cli("infer " + run + " --input " + dir / "x.npy" + " --output " + dir / "y.npy", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "a language model; infer runs image classifiers"));

  // The network as trained: the spec at the corpus' vocabulary, the checkpoint's weights.
  spec::Space space = language_model(6);
  space.network.body[0].channels = 8;
  space.network.classes = int64_t(load_corpus(data).vocabulary.size());
  const ir::Graph graph = spec::compile(space);
  const ir::ParameterStore params(graph, 0);
  algorithms::restore_parameters(graph, params, io::load_checkpoint(run + "/checkpoint.bin"));
  const int64_t batch = 2, vocabulary = space.network.classes;
  std::vector<float> ids;
  for (int64_t i = 0; i < batch * 6; ++i) ids.push_back(float((i * 7 + 3) % vocabulary));
  const Tensor tokens = Tensor::from_vector({batch, 6}, ids);
  Rng rng(2);
  const Tensor h0 = uniform_tensor({batch, 8}, -0.5f, 0.5f, rng);
  write_int64_npy(dir / "tokens.npy", tokens);
  io::write_npy(dir / "h0.npy", h0);
  run_onnx(dir, {model, dir / "tokens.npy", dir / "h0.npy", dir / "ort.npy"});
  const sched::RunOutputs ours = forward(graph, params, tokens, h0);
  const double logits_diff = max_abs_diff(ours.logits.value(), io::read_npy(dir / "ort.npy"));
  const double state_diff = max_abs_diff(ours.state.value(), io::read_npy(dir / "ort.1.npy"));
  MESSAGE("trained language model: max |cellgraph - onnxruntime| logits ", logits_diff,
          ", final state ", state_diff);
  CHECK(max_abs(ours.logits.value()) > 1e-3);
  CHECK(logits_diff <= kTolerance);
  CHECK(state_diff <= kTolerance);
  // Trained, not the seeded initial weights of the same spec.
  const ir::ParameterStore initial(graph, 0);
  CHECK(max_abs_diff(forward(graph, initial, tokens, h0).logits.value(), ours.logits.value()) > 0);
  // The cell takes the embedded token: one step from h0 is the state after one token.
  spec::Space one = space;
  one.network.sequence_length = 1;
  const ir::Graph step_graph = spec::compile(one);
  const ir::ParameterStore step_params(step_graph, 0);
  copy_weights(graph, params, step_graph, step_params);
  const Tensor first = Tensor::from_vector({batch, 1}, {ids[0], ids[6]});
  std::vector<float> x;
  const std::vector<float> table = params[ir::ParamId{0}].value().to_vector();
  for (float id : {ids[0], ids[6]})
    x.insert(x.end(), table.begin() + long(id) * 8, table.begin() + long(id) * 8 + 8);
  io::write_npy(dir / "x.npy", Tensor::from_vector({batch, 8}, x));
  run_onnx(dir, {cell, dir / "x.npy", dir / "h0.npy", dir / "h1.npy"});
  CHECK(max_abs_diff(forward(step_graph, step_params, first, h0).state.value(),
                     io::read_npy(dir / "h1.npy")) <= kTolerance);
}
