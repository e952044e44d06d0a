// `cellgraph train` evaluation-network options: --cutout, --crop-padding, --flip,
// --label-smoothing, --drop-path, --auxiliary-weight, --cells and --channels, and what eval
// and export make of such a run. The built binary on tiny fixed networks (DARTS_V2 cells as
// 3 cells at C = 4 for the DARTS options) and a 64-image Fashion-MNIST subset, so each case
// takes about a second.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <sys/wait.h>

#include "engine/io/checkpoint.h"
#include "spec/compile.h"
#include "spec/evaluation_network.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/run_files.h"

using namespace cellgraph;

namespace {

namespace fs = std::filesystem;

const char* const kData = "fashion-mnist:" CELLGRAPH_FASHION_MNIST_DIR;

using testing::has;
using testing::metric_values;
using testing::read_text;
using testing::Result;
using testing::TempDir;

Result run_cli(const TempDir& dir, const std::string& args) { return testing::run_cli(args, dir); }

// A tiny fixed network (input [1, 8, 8]: the runner fits it to Fashion-MNIST's [1, 28, 28]).
std::string write_tiny_fixed(const TempDir& dir) {
  std::string path = dir / "tiny_fixed.json";
  std::ofstream(path) << R"({
  "format": 1, "name": "tiny_fixed",
  "cells": [{
    "name": "normal", "inputs": ["c_k-2", "c_k-1"],
    "nodes": [
      {"name": "a", "edges": [{"from": "c_k-2", "op": "sep_conv_3x3"},
                              {"from": "c_k-1", "op": "skip_connect"}]},
      {"name": "b", "edges": [{"from": "c_k-1", "op": "max_pool_3x3"},
                              {"from": "a", "op": "sep_conv_3x3"}]}
    ],
    "output": {"concat": ["a", "b"]}
  }],
  "network": {
    "input": [1, 8, 8], "classes": 3,
    "stem": [{"op": "conv_3x3", "channels": 6}, {"op": "batch_norm"}],
    "body": [{"cell": "normal", "channels": 4}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";
  return path;
}

// 64 images, batch 8: 8 steps per epoch; a metrics line every step.
std::string small_train(const std::string& spec, const std::string& out) {
  return "train " + spec + " --out " + out + " --data " + kData +
         " --subset 64 --test-subset 16 --batch 8 --epochs 2 --log-every 1 --threads 1 --seed 5";
}

const char* const kAugment = " --cutout 6 --crop-padding 2 --flip --label-smoothing 0.1";

// DARTS_V2's cells as an evaluation network small enough for a test: 3 cells at C = 4
// (reductions at cells 1 and 2: 28 -> 14 -> 7 pixels, so the auxiliary head pools 7x7).
const char* const kDartsV2 = CELLGRAPH_SOURCE_DIR "/examples/networks/darts_v2.json";
const char* const kSmallDarts = " --cells 3 --channels 4";
// Drop-path 0.6: 0 in the first epoch, 0.3 in the second (DARTS: P * epoch / epochs).
std::string darts_eval() {
  return std::string(kSmallDarts) + " --drop-path 0.6 --auxiliary-weight 0.4";
}

// The value of `key` in each metrics line that has it.
std::vector<double> metric(const std::string& path, const std::string& key) {
  std::vector<double> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    const spec::JsonValue v = spec::parse_json_string(line, path);
    if (const spec::JsonValue* x = v.find(key)) out.push_back(x->as_double());
  }
  return out;
}

// "…, 95 nodes; …" of an export line: the node count.
int exported_nodes(const std::string& out) {
  const size_t end = out.find(" nodes");
  const size_t start = out.rfind(' ', end - 1);
  return std::stoi(out.substr(start + 1, end - start - 1));
}

// The train_loss of each metrics line.
std::vector<double> train_losses(const std::string& path) {
  std::vector<double> losses;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    const spec::JsonValue v = spec::parse_json_string(line, path);
    if (const spec::JsonValue* loss = v.find("train_loss")) losses.push_back(loss->as_double());
  }
  return losses;
}

}  // namespace

TEST_CASE("cli: train --cutout/--crop-padding/--flip/--label-smoothing go into config.json") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_fixed(dir);
  Result r = run_cli(dir, small_train(spec, dir / "aug") + kAugment + " --max-steps 3");
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "test accuracy: "));
  const spec::JsonValue config = spec::parse_json_file(dir / "aug/config.json");
  CHECK(config.find("cutout")->as_integer() == 6);
  CHECK(config.find("crop_padding")->as_integer() == 2);
  CHECK(config.find("flip")->as_bool() == true);
  CHECK(config.find("label_smoothing")->as_double() == 0.1);

  // Defaults: everything off.
  r = run_cli(dir, small_train(spec, dir / "plain") + " --max-steps 1");
  REQUIRE(r.status == 0);
  const spec::JsonValue plain = spec::parse_json_file(dir / "plain/config.json");
  CHECK(plain.find("cutout")->as_integer() == 0);
  CHECK(plain.find("crop_padding")->as_integer() == 0);
  CHECK(plain.find("flip")->as_bool() == false);
  CHECK(plain.find("label_smoothing")->as_double() == 0.0);
  CHECK(plain.find("drop_path")->as_double() == 0.0);
  CHECK(plain.find("auxiliary_weight")->as_double() == 0.0);
  CHECK(plain.find("cells")->as_integer() == 0);  // 0: the spec's body as written
  CHECK(plain.find("channels")->as_integer() == 0);
  CHECK_FALSE(has(read_text(dir / "plain/metrics.jsonl"), "drop_path"));
  CHECK_FALSE(has(read_text(dir / "plain/metrics.jsonl"), "train_aux_loss"));

  // --darts-cifar: DARTS' evaluation recipe as defaults; explicit flags still win.
  r = run_cli(dir, small_train(kDartsV2, dir / "recipe") +
                       " --darts-cifar --cells 3 --channels 4 --cutout 5 --max-steps 1");
  REQUIRE(r.status == 0);
  const spec::JsonValue recipe = spec::parse_json_file(dir / "recipe/config.json");
  CHECK(recipe.find("cutout")->as_integer() == 5);
  CHECK(recipe.find("crop_padding")->as_integer() == 4);
  CHECK(recipe.find("flip")->as_bool() == true);
  CHECK(recipe.find("drop_path")->as_double() == 0.2);
  CHECK(recipe.find("auxiliary_weight")->as_double() == 0.4);
  CHECK(recipe.find("cells")->as_integer() == 3);
  CHECK(recipe.find("channels")->as_integer() == 4);
  CHECK(recipe.find("epochs")->as_integer() == 2);  // small_train's, not the recipe's 600

  // The options appear in --help.
  r = run_cli(dir, "train --help");
  CHECK(r.status == 0);
  for (const char* flag :
       {"--cutout L", "--crop-padding P", "--flip", "--label-smoothing X", "--drop-path P",
        "--auxiliary-weight W", "--cells N", "--channels C", "--darts-cifar"}) {
    CAPTURE(flag);
    CHECK(has(r.out, flag));
  }
}

TEST_CASE("cli: train --label-smoothing and augmentation change the training loss") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_fixed(dir);
  const std::string steps = " --max-steps 2";
  REQUIRE(run_cli(dir, small_train(spec, dir / "none") + steps).status == 0);
  REQUIRE(run_cli(dir, small_train(spec, dir / "none2") + steps).status == 0);
  REQUIRE(run_cli(dir, small_train(spec, dir / "ls") + steps + " --label-smoothing 0.2").status ==
          0);
  REQUIRE(run_cli(dir, small_train(spec, dir / "cut") + steps + " --cutout 8").status == 0);
  const std::vector<double> none = train_losses(dir / "none/metrics.jsonl");
  const std::vector<double> ls = train_losses(dir / "ls/metrics.jsonl");
  const std::vector<double> cut = train_losses(dir / "cut/metrics.jsonl");
  REQUIRE(none.size() == 2);
  REQUIRE(ls.size() == 2);
  REQUIRE(cut.size() == 2);
  // Same seed, same batches: deterministic without the options...
  CHECK(train_losses(dir / "none2/metrics.jsonl") == none);
  // ...and the first step (same weights, same images) differs only by the smoothed targets,
  // which for a near-uniform untrained network barely move the loss but do move it.
  CHECK(ls[0] != none[0]);
  CHECK(ls[1] != none[1]);
  // Cutout changes the training images, hence the loss.
  CHECK(cut[0] != none[0]);
}

TEST_CASE("cli: train rejects bad --cutout, --crop-padding and --label-smoothing values") {
  TempDir dir;
  const std::string spec = write_tiny_fixed(dir);
  const std::string base = "train " + spec + " --out " + dir / "bad" + " --data " + kData;
  struct Case {
    const char* flags;
    const char* message;
  };
  for (const Case& c : {Case{"--label-smoothing 1.5",
                             "--label-smoothing: expected a number in "
                             "[0, 1), got '1.5'"},
                        Case{"--label-smoothing 1", "--label-smoothing: expected a number"},
                        Case{"--label-smoothing -0.1", "--label-smoothing: expected a number"},
                        Case{"--label-smoothing x", "--label-smoothing: expected a number"},
                        Case{"--cutout -1", "--cutout: expected an integer"},
                        Case{"--cutout 2.5", "--cutout: expected an integer"},
                        Case{"--crop-padding -2", "--crop-padding: expected an integer"},
                        Case{"--flip=yes", "--flip: takes no value"},
                        Case{"--drop-path 1", "--drop-path: expected a number in [0, 1), got '1'"},
                        Case{"--drop-path -0.1", "--drop-path: expected a number in [0, 1)"},
                        Case{"--drop-path x", "--drop-path: expected a number in [0, 1)"},
                        Case{"--auxiliary-weight -1", "--auxiliary-weight: expected a number >= 0"},
                        Case{"--auxiliary-weight inf", "--auxiliary-weight: expected a number"},
                        Case{"--cells 2", "--cells: expected an integer in [3, 1000], got '2'"},
                        Case{"--cells 8.5", "--cells: expected an integer"},
                        Case{"--channels 0", "--channels: expected an integer in [1, 65536]"},
                        // The tiny network has no reduction cell: no evaluation body, no head.
                        Case{"--cells 8", "--cells 8 --channels 36: "},
                        Case{"--auxiliary-weight 0.4",
                             "--auxiliary-weight 0.4: the auxiliary head reads the second "
                             "reduction cell's output"}}) {
    CAPTURE(c.flags);
    const Result r = run_cli(dir, base + " " + c.flags);
    CHECK(r.status == 1);
    CHECK(has(r.err, c.message));
    CHECK_FALSE(fs::exists(dir / "bad/config.json"));
  }
}

TEST_CASE(
    "cli: train --resume with augmentation, label smoothing, drop-path and aux is bit-identical") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string options = kAugment + darts_eval();
  // Uninterrupted: 11 steps (an epoch ends at 8; drop-path starts in the second epoch).
  Result r = run_cli(dir, small_train(kDartsV2, dir / "whole") + options + " --max-steps 11");
  REQUIRE(r.status == 0);
  // 3 steps (mid-epoch), then a new process resumes to 11, across the epoch boundary.
  r = run_cli(dir, small_train(kDartsV2, dir / "split") + options + " --max-steps 3");
  REQUIRE(r.status == 0);
  r = run_cli(dir, "train --resume " + dir / "split" + " --max-steps 11 --threads 1");
  REQUIRE(r.status == 0);
  const std::vector<std::string> whole = metric_values(dir / "whole/metrics.jsonl");
  CHECK(whole.size() == 13);  // 11 logs, 1 epoch end, 1 test line
  CHECK(metric_values(dir / "split/metrics.jsonl") == whole);
  testing::check_same_tensors(dir / "whole/checkpoint.bin", dir / "split/checkpoint.bin");
  const spec::JsonValue config = spec::parse_json_file(dir / "split/config.json");
  CHECK(config.find("cutout")->as_integer() == 6);
  CHECK(config.find("flip")->as_bool() == true);
  CHECK(config.find("label_smoothing")->as_double() == 0.1);
  CHECK(config.find("drop_path")->as_double() == 0.6);
  CHECK(config.find("auxiliary_weight")->as_double() == 0.4);
  CHECK(config.find("cells")->as_integer() == 3);
  CHECK(config.find("channels")->as_integer() == 4);
  // The drop-path probability of each step: P * epoch / epochs, epoch 0-based.
  const std::vector<double> drop = metric(dir / "split/metrics.jsonl", "drop_path");
  REQUIRE(drop.size() == 12);
  CHECK(drop[0] == 0.0);
  CHECK(drop[8] == 0.0);  // the end of epoch 1
  CHECK(drop[9] == doctest::Approx(0.3));
  // Both the network and the auxiliary head were trained and checkpointed.
  bool aux_entries = false;
  const io::Checkpoint split = io::load_checkpoint(dir / "split/checkpoint.bin");
  for (const auto& [name, t] : split.tensors())
    aux_entries |= name.rfind("param/auxiliary.", 0) == 0;
  CHECK(aux_entries);
  // The options cannot change on resume.
  for (const char* flag : {"--cutout 4", "--drop-path 0.2", "--auxiliary-weight 0", "--cells 8"}) {
    CAPTURE(flag);
    r = run_cli(dir, "train --resume " + dir / "split" + " " + flag);
    CHECK(r.status == 1);
    CHECK(has(r.err, " cannot be combined with --resume"));
  }
}

TEST_CASE(
    "cli: train --auxiliary-weight adds W * CE(aux), and eval and export leave the head out") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string one_step = std::string(kSmallDarts) + " --max-steps 1";
  REQUIRE(run_cli(dir, small_train(kDartsV2, dir / "plain") + one_step).status == 0);
  Result r =
      run_cli(dir, small_train(kDartsV2, dir / "aux") + one_step + " --auxiliary-weight 0.4");
  REQUIRE(r.status == 0);
  CHECK(has(r.err, "in the auxiliary head, weight 0.4"));
  // The same seed gives the same network weights (the head's are initialised after them)
  // and the same batch, so the first step's losses differ by exactly 0.4 * CE(aux).
  const std::vector<double> plain = metric(dir / "plain/metrics.jsonl", "train_loss");
  const std::vector<double> aux = metric(dir / "aux/metrics.jsonl", "train_loss");
  const std::vector<double> aux_ce = metric(dir / "aux/metrics.jsonl", "train_aux_loss");
  REQUIRE(plain.size() == 1);
  REQUIRE(aux.size() == 1);
  REQUIRE(aux_ce.size() == 1);
  CHECK(aux_ce[0] > 0.5);  // ~ln 10 for an untrained head
  CHECK(aux[0] == doctest::Approx(plain[0] + 0.4 * aux_ce[0]).epsilon(1e-6));
  CHECK(metric(dir / "aux/metrics.jsonl", "train_acc") ==
        metric(dir / "plain/metrics.jsonl", "train_acc"));
  CHECK(metric(dir / "plain/metrics.jsonl", "train_aux_loss").empty());

  // eval: the parameter count and MACs of the network as compiled (the head left out),
  // the same for both runs.
  spec::Space space = spec::evaluation_network(spec::parse_file(kDartsV2), 3, 4);
  space.network.in_channels = 1;
  space.network.in_height = space.network.in_width = 28;
  const ir::Graph graph = spec::compile(space);
  for (const char* run : {"plain", "aux"}) {
    CAPTURE(run);
    r = run_cli(dir, "eval " + dir / run + " --json --test-subset 16 --threads 1");
    REQUIRE(r.status == 0);
    const spec::JsonValue j = spec::parse_json_string(r.out, "eval --json");
    CHECK(j.find("params")->as_integer() == graph.weight_count());
    CHECK(j.find("macs")->as_integer() == graph.macs());
    CHECK(j.find("count")->as_integer() == 16);
  }
  r = run_cli(dir, "eval " + dir / "aux" + " --test-subset 16 --threads 1");
  REQUIRE(r.status == 0);
  CHECK(has(r.out, std::to_string(graph.weight_count()) + " parameters, " +
                       std::to_string(graph.macs()) + " MACs per sample"));

  // export: the same ONNX graph with or without the head.
  r = run_cli(dir, "export " + dir / "plain" + " --onnx " + dir / "plain.onnx");
  REQUIRE(r.status == 0);
  const int plain_nodes = exported_nodes(r.out);
  r = run_cli(dir, "export " + dir / "aux" + " --onnx " + dir / "aux.onnx");
  REQUIRE(r.status == 0);
  CHECK(exported_nodes(r.out) == plain_nodes);
  // No tensor of the head (DARTS_V2's description, in the metadata, mentions it in words).
  CHECK_FALSE(has(read_text(dir / "aux.onnx"), "auxiliary.conv"));
  CHECK_FALSE(has(read_text(dir / "aux.onnx"), "auxiliary.linear"));
}

// The epoch record's s/step is the epoch's mean, also when a log record falls on the epoch's
// last step (it used to cover only the steps since that log record: none, so inf / null).
TEST_CASE("train: the epoch line's seconds per step is the mean over the epoch") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  // 8 steps per epoch, a log record every 4: one lands on each epoch's last step.
  const Result r = run_cli(dir, "train " + write_tiny_fixed(dir) + " --out " + (dir / "run") +
                                    " --data " + kData +
                                    " --subset 64 --test-subset 16 --batch 8 --epochs 2 "
                                    "--log-every 4 --threads 1");
  REQUIRE(r.status == 0);
  std::istringstream lines(read_text(dir / "run/metrics.jsonl"));
  std::string line;
  std::vector<double> logs;
  int epochs = 0;
  while (std::getline(lines, line)) {
    const spec::JsonValue v = spec::parse_json_string(line, "metrics.jsonl");
    if (v.find("kind")->as_string() == "log")
      logs.push_back(v.find("seconds_per_step")->as_double());
    if (v.find("kind")->as_string() != "epoch") continue;
    ++epochs;
    REQUIRE(v.find("seconds_per_step")->is_number());
    const double epoch = v.find("seconds_per_step")->as_double();
    REQUIRE(logs.size() == 2);  // the epoch's two intervals of 4 steps
    // The mean of two equal-length intervals lies between them (clock overhead aside).
    CHECK(epoch > 0);
    CHECK(epoch >= 0.9 * std::min(logs[0], logs[1]));
    CHECK(epoch <= 1.1 * std::max(logs[0], logs[1]));
    logs.clear();
  }
  CHECK(epochs == 2);
}
