// `cellgraph export` and `cellgraph infer` end to end: the built runner writes an ONNX model
// and the logits of its own eval-mode forward; onnxruntime (the project venv,
// tests/onnx/run_onnx.py) runs the model on the same images and must agree within 1e-4.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <sys/wait.h>

#include "algorithms/sparsenas.h"
#include "engine/io/npy.h"
#include "engine/tensor/random.h"
#include "spec/compile.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/op_tests.h"
#include "tests/support/run_files.h"
#include "tests/support/tiny_search.h"

using namespace cellgraph;

namespace {
using testing::max_abs_diff;

namespace fs = std::filesystem;

constexpr const char kPython[] = CELLGRAPH_TEST_PYTHON;
constexpr const char kRunner[] = CELLGRAPH_SOURCE_DIR "/tests/onnx/run_onnx.py";
constexpr const char kNats[] = CELLGRAPH_SOURCE_DIR "/examples/networks/nats_tss_00001.json";
constexpr const char kData[] = "fashion-mnist:" CELLGRAPH_FASHION_MNIST_DIR;
constexpr double kTolerance = 1e-4;

using testing::has;
using testing::read_text;
using testing::Result;
using testing::run_cli;
using testing::run_shell;
using testing::TempDir;
using testing::write_tiny_space;

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// run_onnx.py MODEL IN.npy... OUT.npy; fails the test (never skips) without the venv.
Tensor onnxruntime(const TempDir& dir, const std::vector<std::string>& args) {
  if (!fs::exists(kPython))
    FAIL("no Python at ", kPython,
         ": run scripts/setup to create the test venv (numpy and onnxruntime from "
         "requirements-test.txt)");
  std::string command = quote(kPython) + " " + quote(kRunner);
  for (const std::string& a : args) command += " " + quote(a);
  const Result r = run_shell(command, dir);
  if (r.status != 0) FAIL("`", command, "` exited with ", r.status, ":\n", r.out, r.err);
  return io::read_npy(args.back());
}

void write_images(const std::string& path, const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  io::write_npy(path, normal_tensor(shape, 0.0f, 1.0f, rng));
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, double(std::fabs(v)));
  return m;
}

// Exports TARGET (extra flags in `flags`), runs `cellgraph infer` and onnxruntime on
// `images`, and checks that they agree; returns the max abs difference.
double export_and_compare(const TempDir& dir, const std::string& target, const std::string& flags,
                          const std::string& images, const std::string& name) {
  const std::string model = dir / (name + ".onnx"), logits = dir / (name + ".cg.npy");
  Result r = run_cli("export " + target + " --onnx " + model + " --threads 1 " + flags, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "wrote " + model));
  CHECK(has(r.out, "ONNX opset 13"));
  CHECK(has(r.out, " nodes"));
  CHECK(fs::file_size(model) > 0);
  r = run_cli("infer " + target + " --input " + images + " --output " + logits + " --threads 1 " +
                  flags.substr(0, flags.find("--fold-bn")),
              dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const Tensor ours = io::read_npy(logits);
  const Tensor theirs = onnxruntime(dir, {model, images, dir / (name + ".ort.npy")});
  CHECK(ours.dim(0) == io::read_npy(images).dim(0));
  CHECK(max_abs(ours) > 1e-3);  // not trivially zero
  const double diff = max_abs_diff(ours, theirs);
  MESSAGE(name, ": cellgraph infer vs onnxruntime max abs diff ", diff);
  CHECK(diff <= kTolerance);
  return diff;
}

}  // namespace

TEST_CASE("cli: export and infer of a spec agree with onnxruntime (seeded weights, BN folded)") {
  TempDir dir;
  const std::string images = dir / "x.npy";
  write_images(images, {3, 3, 32, 32}, 11);
  export_and_compare(dir, kNats, "--seed 3", images, "nats");
  export_and_compare(dir, kNats, "--seed 3 --fold-bn", images, "nats_folded");

  // The metadata carries the genotype and the spec.
  const Result r = run_shell(
      quote(kPython) + " " + quote(kRunner) + " --describe " + quote(dir / "nats.onnx"), dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "\"genotype\": \"|nor_conv_3x3~0|+"));
  CHECK(has(r.out, "\"spec\": \"{"));
  CHECK(has(r.out, "\"graph_name\": \"nats_tss_00001\""));

  // Another seed gives other weights, so other logits.
  REQUIRE(run_cli("infer " + std::string(kNats) + " --input " + images + " --output " +
                      dir / "s4.npy" + " --seed 4 --threads 1",
                  dir)
              .status == 0);
  CHECK(max_abs_diff(io::read_npy(dir / "s4.npy"), io::read_npy(dir / "nats.cg.npy")) > 1e-3);
}

TEST_CASE("cli: export --cell writes a single cell that onnxruntime runs") {
  TempDir dir;
  const std::string model = dir / "cell.onnx";
  Result r = run_cli("export " + std::string(kNats) + " --cell tss --seed 3 --onnx " + model, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "cell 'tss' (cells.0)"));
  r = run_shell(quote(kPython) + " " + quote(kRunner) + " --describe " + quote(model), dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "\"name\": \"c_km1\""));
  // NATS cells have one input: c_{k-1} [N, 16, 32, 32].
  const std::string in = dir / "c.npy";
  write_images(in, {2, 16, 32, 32}, 5);
  const Tensor out = onnxruntime(dir, {model, in, dir / "cell_out.npy"});
  CHECK(out.shape() == Shape{2, 16, 32, 32});

  r = run_cli("export " + std::string(kNats) + " --cell nope --onnx " + dir / "nope.onnx", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "nope"));
  CHECK(!fs::exists(dir / "nope.onnx"));
}

TEST_CASE("cli: infer rejects a wrong-shape or malformed input, naming the file") {
  TempDir dir;
  const std::string wrong = dir / "wrong.npy";
  write_images(wrong, {2, 1, 28, 28}, 1);
  Result r = run_cli(
      "infer " + std::string(kNats) + " --input " + wrong + " --output " + dir / "y.npy", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, wrong));
  CHECK(has(r.err, "[2, 1, 28, 28]"));
  CHECK(has(r.err, "[N, 3, 32, 32]"));
  CHECK(!fs::exists(dir / "y.npy"));

  const std::string junk = dir / "junk.npy";
  std::ofstream(junk) << "not numpy";
  r = run_cli("infer " + std::string(kNats) + " --input " + junk + " --output " + dir / "y.npy",
              dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, junk));

  r = run_cli("infer " + std::string(kNats) + " --output " + dir / "y.npy", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "--input"));
  r = run_cli("export " + std::string(kNats), dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "--onnx"));
}

TEST_CASE("cli: export refuses a search space, naming the mixed edge") {
  TempDir dir;
  const std::string space = write_tiny_space(dir);
  Result r = run_cli("export " + space + " --onnx " + dir / "s.onnx", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "is a mixed edge over {none, skip_connect, sep_conv_3x3, max_pool_3x3}"));
  CHECK(has(r.err, "cells.0 (cell 'normal') node"));
  CHECK(!fs::exists(dir / "s.onnx"));
  r = run_cli("infer " + space + " --input " + dir / "x.npy" + " --output " + dir / "y.npy", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "a search space"));
}

TEST_CASE("cli: a one-stage ISTA-NAS search exports its absorbed network directly") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  std::string text = read_text(write_tiny_space(dir));
  text.replace(text.find("\"classes\": 3,"), 13, "\"classes\": 3, \"edge_bn\": true,");
  // Codes of order 1, so the searched coefficients (and their absorption) matter.
  text.replace(text.find("\"op_sets\""), 0, "\"arch\": {\"init_std\": 1.0}, ");
  const std::string space = dir / "tiny_bn.json";
  std::ofstream(space) << text;
  // No validation split: 64 images, batch 8, 8 steps per epoch. A large epsilon: the codes
  // freeze at the first epoch end (unless a support moved) and the edge BNs train after.
  Result r = run_cli("search " + space + " --out " + dir / "one" + " --data " + kData +
                         " --subset 64 --batch 8 --max-steps 9 --threads 1 --seed 3 --algo "
                         "ista-onestage --ista-epsilon 1e9",
                     dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(read_text(dir / "one/derived.json"), "\"edge_bn\": true"));
  // No validation split: the metrics have no val fields (not zeros), the lines no val part.
  const std::string metrics = read_text(dir / "one/metrics.jsonl");
  CHECK(has(metrics, "\"kind\":\"epoch\""));
  CHECK(has(r.err, "64 training images [1, 28, 28], 8 steps per epoch"));
  CHECK(has(metrics, "\"train_loss\""));
  CHECK(!has(metrics, "val_"));
  CHECK(!has(r.err, "val loss"));
  const std::string images = dir / "x.npy";
  write_images(images, {3, 1, 28, 28}, 4);
  export_and_compare(dir, dir / "one", "", images, "onestage");
  export_and_compare(dir, dir / "one", "--fold-bn", images, "onestage_folded");
  r = run_cli("export " + dir / "one" + " --onnx " + dir / "o.onnx", dir);
  CHECK(has(r.err + r.out, "coefficients absorbed"));
  // eval takes the run directory too, and scores the absorbed network.
  r = run_cli("eval " + dir / "one" + " --test-subset 32 --threads 1", dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, ": test accuracy "));
}

TEST_CASE("cli: export and infer of a train run use its trained weights") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string space = write_tiny_space(dir);
  REQUIRE(run_cli("search " + space + " --out " + dir / "search" + " --data " + kData +
                      " --subset 64 --batch 8 --max-steps 1 --threads 1 --seed 3",
                  dir)
              .status == 0);
  // A search run directory: train its derived network first.
  Result r = run_cli("export " + dir / "search" + " --onnx " + dir / "s.onnx", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "train the derived network first"));
  CHECK(has(r.err, "derived.json"));

  r = run_cli("train " + dir / "search/derived.json" + " --out " + dir / "train" + " --data " +
                  kData + " --subset 64 --batch 8 --max-steps 2 --test-subset 16 --threads 1",
              dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string images = dir / "x.npy";
  write_images(images, {4, 1, 28, 28}, 2);
  export_and_compare(dir, dir / "train", "", images, "trained");
  // Trained weights, not the seeded initial ones of the same spec fitted to the data.
  r = run_cli("infer " + dir / "search/derived.json" + " --data " + kData + " --input " + images +
                  " --output " + dir / "init.npy",
              dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(max_abs_diff(io::read_npy(dir / "init.npy"), io::read_npy(dir / "trained.cg.npy")) > 0);
  r = run_cli("export " + dir / "train" + " --data " + kData + " --onnx " + dir / "d.onnx", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "--data applies to a spec only"));
}

TEST_CASE(
    "cli: a width search derives a pruned network and its weights, which train and export take") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string space = dir / "width.json";
  std::ofstream(space) << R"({
    "format": 1, "name": "width_cli", "cells": [],
    "network": {
      "input": [1, 28, 28], "classes": 10,
      "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
      "body": [{"block": "residual", "channels": 4, "repeat": 2, "width_search": true},
               {"block": "residual", "channels": 8, "stride": 2, "width_search": true}],
      "head": [{"op": "batch_norm"}, {"op": "relu"}, {"op": "global_avg_pool"},
               {"op": "linear"}]
    }})";
  const std::string search = dir / "search";
  const std::string common = " --data " + std::string(kData) + " --subset 64 --batch 8 --threads 1";
  Result r = run_cli("search " + space + " --algo darts --out " + search + common, dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "only --algo rarts searches widths"));

  r = run_cli("search " + space +
                  " --algo rarts --rarts-width-keep 0.5 --max-steps 2 --log-every 1 --out " +
                  search + common + " --seed 3",
              dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.out, "widths=["));
  // The scores are in every metrics line, as what they are.
  CHECK(has(read_text(search + "/metrics.jsonl"), "\"kind\":\"channels\""));
  // Network Slimming's weight training by default.
  const std::string config = read_text(search + "/config.json");
  CHECK(has(config, "\"lr\": 0.1,"));
  CHECK(has(config, "\"weight_decay\": 0.0001,"));

  // Half of the 4 + 4 + 8 scored channels survive, one stage per block.
  const std::string derived = search + "/derived.json";
  const spec::Space pruned = spec::parse_file(derived);
  REQUIRE(pruned.network.body.size() == 3);
  int64_t inner = 0;
  for (const spec::Stage& s : pruned.network.body) {
    CHECK_FALSE(s.width_search);
    CHECK(s.inner_channels >= 1);
    inner += s.inner_channels;
  }
  CHECK(inner == 8);
  CHECK(pruned.is_fixed());
  CHECK(pruned.metadata.find("weights")->as_string() == "derived.weights.bin");
  const std::string weights = search + "/derived.weights.bin";
  REQUIRE(fs::exists(weights));
  // `derive` from the checkpoint writes the same network and weights.
  r = run_cli("derive " + search + " --out " + dir / "again.json", dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(read_text(dir / "again.weights.bin") == read_text(weights));

  // Fine-tuning starts from the surviving weights, every parameter of the pruned network.
  const size_t params = spec::compile(pruned).params.size();
  r = run_cli("train " + derived + " --init-weights " + weights + " --out " + dir / "train" +
                  common + " --max-steps 2 --test-subset 16",
              dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.err, "initial weights: " + std::to_string(params) + " of " + std::to_string(params) +
                       " parameters"));
  const std::string tune_config = read_text(dir / "train/config.json");
  CHECK(has(tune_config, "\"init_weights\":"));
  CHECK(has(tune_config, "\"lr\": 0.1,"));  // Network Slimming's fine-tuning
  CHECK(has(tune_config, "\"weight_decay\": 0.0001,"));
  // A file that is not a checkpoint is refused by name.
  r = run_cli("train " + derived + " --init-weights " + derived + " --out " + dir / "train2" +
                  common + " --max-steps 1",
              dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, derived));

  const std::string images = dir / "x.npy";
  write_images(images, {3, 1, 28, 28}, 4);
  export_and_compare(dir, dir / "train", "", images, "pruned");
}

TEST_CASE("cli: a SparseNAS mixed-path cell (parallel edges, a pruned node) exports") {
  TempDir dir;
  testing::TinySearch s("sparsenas", testing::tiny_space_without_none());
  const int64_t cols = 3;  // skip_connect, sep_conv_3x3, max_pool_3x3
  auto at = [&](int edge, int64_t col) {
    const ir::MixedEdge* m = algorithms::find_mixed_edge(s.graph, "normal", "b", edge);
    REQUIRE(m != nullptr);
    return size_t(int64_t(m->row) * cols + col);
  };
  // Node a's group is zero (pruned); b keeps sep_conv_3x3 and max_pool_3x3 on its edge from
  // c_k-1 (parallel edges) and skip_connect from c_k-2; its path from a goes with a.
  std::vector<float>& x = algorithms::sparsenas_state(s.arch).x[0];
  std::fill(x.begin(), x.end(), 0.0f);
  x[at(0, 0)] = 0.4f;
  x[at(1, 1)] = 0.3f;
  x[at(1, 2)] = -0.2f;
  x[at(2, 1)] = 0.5f;
  const algorithms::Derived d = algorithms::derive(s.space, s.graph, s.arch);
  REQUIRE(d.space.cells[0].nodes.size() == 1);
  REQUIRE(d.space.cells[0].nodes[0].edges.size() == 3);
  CHECK(d.genotype ==
        "Genotype(normal=[[('skip_connect', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 1)]], "
        "normal_concat=[2])");
  const std::string spec_path = dir / "mixed.json";
  std::ofstream(spec_path) << spec::to_json(d.space);
  const std::string images = dir / "x.npy";
  write_images(images, {3, 1, 8, 8}, 6);
  export_and_compare(dir, spec_path, "--seed 3", images, "mixed");
  export_and_compare(dir, spec_path, "--seed 3 --fold-bn", images, "mixed_folded");
  // The cell alone, with its two inputs (the stem's 6 channels, preprocessed to C = 4).
  const std::string cell = dir / "cell.onnx";
  const Result r = run_cli("export " + spec_path + " --cell normal --seed 3 --onnx " + cell, dir);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const std::string c0 = dir / "c0.npy", c1 = dir / "c1.npy";
  write_images(c0, {2, 6, 8, 8}, 7);
  write_images(c1, {2, 6, 8, 8}, 8);
  const Tensor out = onnxruntime(dir, {cell, c0, c1, dir / "cell_out.npy"});
  CHECK(out.shape() == Shape{2, 4, 8, 8});  // one surviving node of C = 4 channels
}
