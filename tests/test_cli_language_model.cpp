// The runner on language models: search a recurrent space on a PTB-format folder, resume it
// bit-identically, derive, train the derived cell, evaluate its test perplexity; the DARTS
// recurrent genotype; flags that do not apply to a language model are refused by name.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "algorithms/derive.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/run_files.h"

using namespace cellgraph;
using namespace cellgraph::testing;
namespace fs = std::filesystem;

namespace {

// A two-node DARTS RNN search cell, T = 5 tokens, 8 units, no dropout.
constexpr const char* kSpace = R"({
  "format": 1, "name": "tiny_lm",
  "op_sets": {"rnn": ["none", "tanh", "relu", "sigmoid", "identity"]},
  "cells": [{"name": "rnn", "kind": "recurrent", "steps": 2, "inputs": ["s0"],
             "nodes": [{"name": "n1", "from": ["s0"], "ops": "rnn", "keep": 1},
                       {"name": "n2", "from": ["s0", "n1"], "ops": "rnn", "keep": 1}],
             "output": {"concat": ["n1", "n2"]}}],
  "network": {"input": [5], "classes": 100, "body": [{"cell": "rnn", "channels": 8}],
              "head": [{"op": "linear"}]}
})";

std::string write_ptb(const TempDir& dir) {
  std::string folder = dir / "ptb";
  fs::create_directories(folder);
  const char* lines[] = {" the cat sat on the mat ", " a dog ran in the park ",
                         " the cat ran on the mat "};
  for (const char* split : {"train", "valid", "test"}) {
    std::ofstream out(folder + "/ptb." + split + ".txt");
    for (int i = 0; i < 300; ++i) out << lines[i % 3] << "\n";
  }
  return folder;
}

std::string search_args(const std::string& spec, const std::string& data, const std::string& out) {
  return "search " + spec + " --data ptb:" + data + " --out " + out +
         " --batch 2 --epochs 2 --log-every 2 --threads 1";
}

}  // namespace

TEST_CASE("cli language model: search, resume, derive, train and eval on a PTB folder") {
  TempDir dir;
  const std::string spec = dir / "lm.json";
  std::ofstream(spec) << kSpace;
  const std::string ptb = write_ptb(dir);

  Result r = run_cli(search_args(spec, ptb, dir / "whole") + " --max-steps 8", dir);
  REQUIRE(r.status == 0);
  CHECK(has(r.err, "vocabulary of 100 words; the corpus has 11: using the corpus'"));
  CHECK(has(r.err, "training tokens of ptb:"));
  CHECK(has(r.err, "ppl "));
  CHECK(has(r.out, "Genotype(recurrent=[("));
  const spec::JsonValue config = spec::parse_json_file(dir / "whole/config.json");
  CHECK(config.find("corpus")->find("vocabulary")->as_integer() == 11);
  CHECK(config.find("lr")->as_double() == 20);  // DARTS' RNN search defaults
  CHECK(config.find("momentum")->as_double() == 0);
  CHECK(config.find("grad_clip")->as_double() == 0.25);
  CHECK(config.find("input") == nullptr);
  const std::string metrics = read_text(dir / "whole/metrics.jsonl");
  CHECK(has(metrics, "\"train_ppl\""));
  CHECK(has(metrics, "\"val_ppl\""));

  // Stopped after 3 steps (mid-epoch: the checkpoint holds both streams' states), resumed.
  r = run_cli(search_args(spec, ptb, dir / "split") + " --max-steps 3", dir);
  REQUIRE(r.status == 0);
  r = run_cli("search --resume " + dir / "split" + " --max-steps 8 --threads 1", dir);
  REQUIRE(r.status == 0);
  CHECK(metric_values(dir / "split/metrics.jsonl") == metric_values(dir / "whole/metrics.jsonl"));
  check_same_tensors(dir / "whole/checkpoint.bin", dir / "split/checkpoint.bin");
  CHECK(read_text(dir / "split/derived.json") == read_text(dir / "whole/derived.json"));
  r = run_cli("derive " + dir / "split" + " --out " + dir / "again.json", dir);
  CHECK(r.status == 0);
  CHECK(read_text(dir / "again.json") == read_text(dir / "whole/derived.json"));

  // The derived cell trains (DARTS' evaluation defaults) and reports a test perplexity.
  r = run_cli("train " + dir / "whole/derived.json" + " --data ptb:" + ptb + " --out " +
                  dir / "train" + " --max-steps 4 --log-every 1 --threads 1",
              dir);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "test perplexity: "));
  const std::string train_metrics = read_text(dir / "train/metrics.jsonl");
  CHECK(has(train_metrics, "\"test_ppl\""));
  const spec::JsonValue train_config = spec::parse_json_file(dir / "train/config.json");
  CHECK(train_config.find("batch")->as_integer() == 64);  // DARTS' rnn/train.py
  CHECK(train_config.find("weight_decay")->as_double() == 8e-7);
  r = run_cli("eval " + dir / "train" + " --json --threads 1", dir);
  REQUIRE(r.status == 0);
  const spec::JsonValue eval = spec::parse_json_string(r.out, "eval output");
  CHECK(eval.find("test_ppl")->as_double() > 1.0);
  CHECK(std::isfinite(eval.find("test_ppl")->as_double()));
  // eval reads the checkpoint the run ended with: the run's own test line, exactly.
  const std::vector<std::string> lines = metric_values(dir / "train/metrics.jsonl");
  const spec::JsonValue test_line = spec::parse_json_string(lines.back(), "test line");
  CHECK(test_line.find("kind")->as_string() == "test");
  CHECK(test_line.find("test_loss")->as_double() == eval.find("test_loss")->as_double());
  CHECK(test_line.find("test_ppl")->as_double() == eval.find("test_ppl")->as_double());
}

TEST_CASE("cli language model: image-only flags are refused, ista-onestage says why") {
  TempDir dir;
  const std::string spec = dir / "lm.json";
  std::ofstream(spec) << kSpace;
  const std::string ptb = write_ptb(dir);
  Result r = run_cli("train " + std::string(CELLGRAPH_SOURCE_DIR) +
                         "/examples/networks/darts_v2_rnn.json --data ptb:" + ptb + " --out " +
                         dir / "t" + " --cutout 16",
                     dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "--cutout applies to image networks"));
  CHECK(!fs::exists(dir / "t"));
  r = run_cli(search_args(spec, ptb, dir / "s") + " --algo ista-onestage", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "ista-onestage cannot search it"));
}

TEST_CASE("language model: DARTS_V2's recurrent genotype as DARTS writes it") {
  const spec::Space v2 =
      spec::parse_file(std::string(CELLGRAPH_SOURCE_DIR) + "/examples/networks/darts_v2_rnn.json");
  CHECK(algorithms::genotype_string(v2) ==
        "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), "
        "('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=[1, 2, 3, 4, 5, 6, 7, "
        "8])");
}
