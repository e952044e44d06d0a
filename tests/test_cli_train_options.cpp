// `cellgraph train` evaluation-network options: --cutout, --crop-padding, --flip and
// --label-smoothing. The built binary on a tiny fixed network and a 64-image Fashion-MNIST
// subset, so each case takes seconds.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <sys/wait.h>

#include "engine/io/checkpoint.h"
#include "spec/json_value.h"
#include "tests/support/cli.h"

using namespace cellgraph;

namespace {

namespace fs = std::filesystem;

const std::string kData = std::string("fashion-mnist:") + CELLGRAPH_FASHION_MNIST_DIR;

using testing::has;
using testing::have_fashion_mnist;
using testing::read_text;
using testing::Result;
using testing::TempDir;

Result run_cli(const TempDir& dir, const std::string& args) { return testing::run_cli(args, dir); }

// A tiny fixed network (input [1, 8, 8]: the runner fits it to Fashion-MNIST's [1, 28, 28]).
std::string write_tiny_fixed(const TempDir& dir) {
  const std::string path = dir / "tiny_fixed.json";
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

const std::string kAugment = " --cutout 6 --crop-padding 2 --flip --label-smoothing 0.1";

// metrics.jsonl without the timings, line by line.
std::vector<std::string> metric_values(const std::string& path) {
  std::vector<std::string> lines;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    const spec::JsonValue v = spec::parse_json_string(line, path);
    spec::JsonValue kept = spec::JsonValue::object();
    for (const auto& [key, value] : v.members())
      if (key != "seconds_per_step" && key != "elapsed") kept.set(key, value);
    lines.push_back(spec::dump(kept));
  }
  return lines;
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
  if (!have_fashion_mnist()) {
    MESSAGE("Fashion-MNIST not installed; skipped");
    return;
  }
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

  // The options appear in --help.
  r = run_cli(dir, "train --help");
  CHECK(r.status == 0);
  for (const char* flag : {"--cutout L", "--crop-padding P", "--flip", "--label-smoothing X"}) {
    CAPTURE(flag);
    CHECK(has(r.out, flag));
  }
}

TEST_CASE("cli: train --label-smoothing and augmentation change the training loss") {
  if (!have_fashion_mnist()) {
    MESSAGE("Fashion-MNIST not installed; skipped");
    return;
  }
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
                        Case{"--flip=yes", "--flip: takes no value"}}) {
    CAPTURE(c.flags);
    const Result r = run_cli(dir, base + " " + c.flags);
    CHECK(r.status == 1);
    CHECK(has(r.err, c.message));
    CHECK_FALSE(fs::exists(dir / "bad/config.json"));
  }
}

TEST_CASE("cli: train --resume with augmentation and label smoothing is bit-identical") {
  if (!have_fashion_mnist()) {
    MESSAGE("Fashion-MNIST not installed; skipped");
    return;
  }
  TempDir dir;
  const std::string spec = write_tiny_fixed(dir);
  // Uninterrupted: 11 steps (an epoch ends at 8).
  Result r = run_cli(dir, small_train(spec, dir / "whole") + kAugment + " --max-steps 11");
  REQUIRE(r.status == 0);
  // 3 steps (mid-epoch), then a new process resumes to 11, across the epoch boundary.
  r = run_cli(dir, small_train(spec, dir / "split") + kAugment + " --max-steps 3");
  REQUIRE(r.status == 0);
  r = run_cli(dir, "train --resume " + dir / "split" + " --max-steps 11 --threads 1");
  REQUIRE(r.status == 0);
  const std::vector<std::string> whole = metric_values(dir / "whole/metrics.jsonl");
  CHECK(whole.size() == 13);  // 11 logs, 1 epoch end, 1 test line
  CHECK(metric_values(dir / "split/metrics.jsonl") == whole);
  const io::Checkpoint a = io::load_checkpoint(dir / "whole/checkpoint.bin");
  const io::Checkpoint b = io::load_checkpoint(dir / "split/checkpoint.bin");
  REQUIRE(a.tensors().size() == b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    CAPTURE(a.tensors()[i].first);
    CHECK(a.tensors()[i].second.to_vector() == b.tensors()[i].second.to_vector());
  }
  const spec::JsonValue config = spec::parse_json_file(dir / "split/config.json");
  CHECK(config.find("cutout")->as_integer() == 6);
  CHECK(config.find("flip")->as_bool() == true);
  CHECK(config.find("label_smoothing")->as_double() == 0.1);
  // The options cannot change on resume.
  r = run_cli(dir, "train --resume " + dir / "split" + " --cutout 4");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--cutout cannot be combined with --resume"));
}
