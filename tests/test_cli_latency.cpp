// `cellgraph latency`: a search space's table, a RARTS search penalised by it, and a derived
// network's measured latency next to the table's estimate.
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "spec/json_value.h"
#include "tests/support/cli.h"

using namespace cellgraph;

namespace {

using testing::has;
using testing::read_text;
using testing::Result;
using testing::TempDir;

const char* const kData = "fashion-mnist:" CELLGRAPH_FASHION_MNIST_DIR;

Result run_cli(const std::string& args) {
  static const TempDir kScratch("cellgraph_cli_latency");
  return testing::run_cli(args, kScratch);
}

constexpr const char* kSpace = R"({
  "format": 1, "name": "nats_small",
  "op_sets": {"nats": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]},
  "cells": [{
    "name": "tss", "inputs": ["in"], "preprocess": "none",
    "nodes": [
      {"name": "n1", "from": ["in"], "ops": "nats"},
      {"name": "n2", "from": ["in", "n1"], "ops": "nats"},
      {"name": "n3", "from": ["in", "n1", "n2"], "ops": "nats"}
    ],
    "output": {"node": "n3"}
  }],
  "network": {
    "input": [1, 28, 28], "classes": 10,
    "stem": [{"op": "conv_3x3", "channels": 4}, {"op": "batch_norm"}],
    "body": [{"cell": "tss", "channels": 4, "repeat": 2}],
    "head": [{"op": "global_avg_pool"}, {"op": "linear"}]
  }
})";

constexpr const char* kTiming = " --repeats 2 --warmup 0 --threads 1";

}  // namespace

TEST_CASE("cli: latency writes a space's table, and measures and estimates a fixed network") {
  TempDir dir;
  const std::string space = dir / "space.json", table = dir / "lat.json";
  std::ofstream(space) << kSpace;
  Result r = run_cli("latency " + space + " --out " + table + kTiming);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(has(r.err, "wrote " + table));
  CHECK(has(r.out, "cell tss (2 instances)"));
  CHECK(has(r.out, "n3/e2<-n2: avg_pool_3x3 "));
  const spec::JsonValue t = spec::parse_json_file(table);
  CHECK(t.find("batch")->as_integer() == 1);
  CHECK(t.find("threads")->as_integer() == 1);
  CHECK(t.find("device")->as_string().rfind("CPU: ", 0) == 0);
  CHECK(t.find("date")->as_string().size() == 20);  // 2025-01-31T12:00:00Z
  const spec::JsonValue& edges = *t.find("cells")->find("tss");
  CHECK(edges.size() == 6);
  CHECK(edges.find("n1/e0<-in")->find("none")->as_double() == 0);
  CHECK(edges.find("n1/e0<-in")->find("nor_conv_3x3")->as_double() > 0);
  const double rest = t.find("rest_ms")->as_double();
  CHECK(rest > 0);

  // The best NATS cell as a fixed network of the same macro structure.
  std::string fixed = kSpace;
  const auto replace = [&](const std::string& from, const std::string& to) {
    fixed.replace(fixed.find(from), from.size(), to);
  };
  replace(R"({"name": "n1", "from": ["in"], "ops": "nats"})",
          R"({"name": "n1", "edges": [{"from": "in", "op": "nor_conv_3x3"}]})");
  replace(R"({"name": "n2", "from": ["in", "n1"], "ops": "nats"})",
          R"({"name": "n2", "from": ["in", "n1"], "op": "nor_conv_3x3"})");
  replace(R"({"name": "n3", "from": ["in", "n1", "n2"], "ops": "nats"})",
          R"({"name": "n3", "edges": [{"from": "in", "op": "skip_connect"},)"
          R"( {"from": "n1", "op": "nor_conv_3x3"}, {"from": "n2", "op": "nor_conv_1x1"}]})");
  const std::string net = dir / "fixed.json";
  std::ofstream(net) << fixed;
  r = run_cli("latency " + net + " --table " + table + " --json" + kTiming);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const spec::JsonValue m = spec::parse_json_string(r.out, "latency --json");
  CHECK(m.find("measured_ms")->as_double() > 0);
  const auto entry = [&](const char* edge, const char* op) {
    return edges.find(edge)->find(op)->as_double();
  };
  const double expect = rest + entry("n1/e0<-in", "nor_conv_3x3") +
                        entry("n2/e0<-in", "nor_conv_3x3") + entry("n2/e1<-n1", "nor_conv_3x3") +
                        entry("n3/e1<-n1", "nor_conv_3x3") + entry("n3/e2<-n2", "nor_conv_1x1");
  CHECK(m.find("estimated_ms")->as_double() == doctest::Approx(expect).epsilon(1e-9));
  r = run_cli("latency " + net + kTiming);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "forward "));
  CHECK_FALSE(has(r.out, "table estimate"));

  // Each form refuses the other's flag.
  r = run_cli("latency " + space + " --table " + table + kTiming);
  CHECK(r.status == 1);
  CHECK(has(r.err, "is a search space"));
  r = run_cli("latency " + net + " --out " + dir / "x.json" + kTiming);
  CHECK(r.status == 1);
  CHECK(has(r.err, "is a fixed network"));
}

TEST_CASE("cli: search --algo rarts with a latency table records it and its expected latency") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string space = dir / "space.json", table = dir / "lat.json", run = dir / "run";
  std::ofstream(space) << kSpace;
  REQUIRE(run_cli("latency " + space + " --out " + table + kTiming).status == 0);
  Result r = run_cli("search " + space + " --algo rarts --latency " + table +
                     " --latency-weight 0.5 --out " + run + " --data " + kData +
                     " --subset 32 --batch 8 --epochs 1 --threads 1 --seed 3");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const spec::JsonValue config = spec::parse_json_file(run + "/config.json");
  CHECK(config.find("latency")->as_string() == table);
  CHECK(config.find("latency_weight")->as_double() == 0.5);
  CHECK(config.find("rarts_lambda")->as_double() == 1);
  CHECK(config.find("rarts_beta")->as_double() == 5);  // lr 0.025 x beta < 0.2
  CHECK(config.find("rarts_y_init")->as_string() == "independent");
  std::string metrics = read_text(run + "/metrics.jsonl");
  metrics.pop_back();  // the last line is the epoch record
  const spec::JsonValue epoch =
      spec::parse_json_string(metrics.substr(metrics.rfind('\n') + 1), "metrics.jsonl");
  CHECK(epoch.find("kind")->as_string() == "epoch");
  REQUIRE(epoch.find("rarts") != nullptr);
  CHECK(epoch.find("rarts")->find("expected_latency_ms")->as_double() > 0);
  CHECK(epoch.find("rarts")->find("distance")->as_double() > 0);

  r = run_cli("search " + space + " --algo rarts --latency-weight 0.5 --out " + dir / "run2" +
              " --data " + kData + " --subset 32 --batch 8 --epochs 1 --threads 1");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--latency-weight 0.5 needs a latency table"));
  r = run_cli("search " + space + " --algo darts --latency " + table + " --out " + dir / "run3");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--latency is an option of --algo rarts"));
}
