// The runner's NATS-Bench lookup and skip ratio: `info` on fixed networks (text and --json),
// and `derive` (and the end of `search`) on a NATS-Bench search run, whose derived.json
// records them in its metadata.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "algorithms/nats_bench.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tests/support/cli.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;
using namespace cellgraph::algorithms;

namespace {

using testing::has;
using testing::read_text;
using testing::Result;
using testing::TempDir;

const char* const kSource = CELLGRAPH_SOURCE_DIR;
const char* const kData = "fashion-mnist:" CELLGRAPH_FASHION_MNIST_DIR;

Result run_cli(const std::string& args) {
  static const TempDir kScratch("cellgraph_cli_nats");
  return testing::run_cli(args, kScratch);
}

std::string percent(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", v);
  return text;
}

int count_of(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("cli: info prints a NATS cell's index and accuracies and a fixed network's skip ratio") {
  const std::string nats = std::string(kSource) + "/examples/networks/nats_tss_06111.json";
  const NatsEntry expected = nats_entry(6111);
  Result r = run_cli("info " + nats);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "NATS-Bench #6111 " + expected.arch + ": test accuracy CIFAR-10 " +
                       percent(expected.accuracy.cifar10) + ", CIFAR-100 " +
                       percent(expected.accuracy.cifar100) + ", ImageNet16-120 " +
                       percent(expected.accuracy.imagenet16_120) + "\n"));
  CHECK(has(r.out, "skip-connection ratio 0.167 (1 of 6 edges; tss 1/6)\n"));

  r = run_cli("info " + nats + " --json");
  REQUIRE(r.status == 0);
  const spec::JsonValue info = spec::parse_json_string(r.out, "info --json");
  const spec::JsonValue* entry = info.find("nats_bench");
  REQUIRE(entry != nullptr);
  CHECK(entry->find("index")->as_integer() == 6111);
  CHECK(entry->find("arch")->as_string() == expected.arch);
  CHECK(entry->find("cifar10")->as_double() == expected.accuracy.cifar10);
  CHECK(entry->find("cifar100")->as_double() == expected.accuracy.cifar100);
  CHECK(entry->find("imagenet16_120")->as_double() == expected.accuracy.imagenet16_120);
  const spec::JsonValue* skips = info.find("skip_ratio");
  REQUIRE(skips != nullptr);
  CHECK(skips->find("skip")->as_integer() == 1);
  CHECK(skips->find("edges")->as_integer() == 6);
  CHECK(skips->find("cells")->find("tss")->find("edges")->as_integer() == 6);

  // DARTS_V2 (a fixed DARTS network): normal 2 of 8 edges skip, reduce 3 of 8; no NATS entry.
  const std::string darts = std::string(kSource) + "/examples/networks/darts_v2.json";
  r = run_cli("info " + darts);
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "skip-connection ratio 0.312 (5 of 16 edges; normal 2/8; reduce 3/8)\n"));
  CHECK_FALSE(has(r.out, "NATS-Bench"));
  const spec::JsonValue darts_info =
      spec::parse_json_string(run_cli("info " + darts + " --json").out, "info --json");
  CHECK(darts_info.find("nats_bench") == nullptr);
  CHECK(darts_info.find("skip_ratio")->find("ratio")->as_double() == 5.0 / 16.0);

  // A search space has neither.
  r = run_cli("info " + std::string(kSource) + "/examples/spaces/nats_bench_tss.json --json");
  REQUIRE(r.status == 0);
  const spec::JsonValue search_info = spec::parse_json_string(r.out, "info --json");
  CHECK(search_info.find("nats_bench") == nullptr);
  CHECK(search_info.find("skip_ratio") == nullptr);
}

TEST_CASE("cli: derive on a NATS-Bench search prints and records the cell's NATS-Bench entry") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = dir / "nats.json";
  std::ofstream(spec) << testing::kTinyNatsSpace;
  const std::string run = dir / "run";
  Result r = run_cli("search " + spec + " --out " + run + " --data " + kData +
                     " --subset 32 --batch 8 --epochs 1 --max-steps 2 --threads 1 --seed 5");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  // The genotype is the NATS arch string; the table's entry for it is the one expected.
  const std::string genotype = read_text(run + "/genotype.txt");
  REQUIRE(genotype.size() > 1);
  const std::string arch = genotype.substr(0, genotype.size() - 1);
  const NatsEntry expected = nats_entry(arch);
  const int skips = count_of(arch, "skip_connect~");

  r = run_cli("derive " + run + " --out " + dir / "again.json");
  REQUIRE(r.status == 0);
  CHECK(r.out == genotype);  // stdout stays the genotype alone
  CHECK(has(r.err, "NATS-Bench #" + std::to_string(expected.index) + " " + arch +
                       ": test accuracy CIFAR-10 " + percent(expected.accuracy.cifar10)));
  CHECK(has(r.err, "skip-connection ratio "));
  CHECK(has(r.err,
            "(" + std::to_string(skips) + " of 6 edges; tss " + std::to_string(skips) + "/6)\n"));

  // derive's file and the search's own derived.json carry the same metadata.
  CHECK(read_text(dir / "again.json") == read_text(run + "/derived.json"));
  const spec::Space derived = spec::parse_file(dir / "again.json");
  REQUIRE(derived.metadata.is_object());
  const spec::JsonValue* entry = derived.metadata.find("nats_bench");
  REQUIRE(entry != nullptr);
  CHECK(entry->find("index")->as_integer() == expected.index);
  CHECK(entry->find("arch")->as_string() == arch);
  CHECK(entry->find("cifar10")->as_double() == expected.accuracy.cifar10);
  CHECK(entry->find("cifar100")->as_double() == expected.accuracy.cifar100);
  CHECK(entry->find("imagenet16_120")->as_double() == expected.accuracy.imagenet16_120);
  const spec::JsonValue* ratio = derived.metadata.find("skip_ratio");
  REQUIRE(ratio != nullptr);
  CHECK(ratio->find("skip")->as_integer() == skips);
  CHECK(ratio->find("edges")->as_integer() == 6);

  // The derived network, metadata and all, is a valid fixed spec that info reads.
  r = run_cli("info " + dir / "again.json");
  CHECK(r.status == 0);
  CHECK(has(r.out, "NATS-Bench #" + std::to_string(expected.index) + " "));
}

TEST_CASE("cli: each epoch record of a NATS-Bench search carries its derived cell's entry") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = dir / "nats.json";
  std::ofstream(spec) << testing::kTinyNatsSpace;
  const std::string run = dir / "run";
  // 32 images, half for validation, batch 8: 2 steps per epoch, 2 epochs.
  const Result r = run_cli("search " + spec + " --out " + run + " --data " + kData +
                           " --subset 32 --batch 8 --epochs 2 --threads 1 --seed 5");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  std::istringstream lines(read_text(run + "/metrics.jsonl"));
  std::string line, last_arch;
  int epochs = 0;
  while (std::getline(lines, line)) {
    const spec::JsonValue record = spec::parse_json_string(line, "metrics.jsonl");
    if (record.find("kind")->as_string() != "epoch") continue;
    ++epochs;
    // The record's genotype is the arch string; its entry is the table's for that string.
    const std::string arch = record.find("genotype")->as_string();
    const NatsEntry expected = nats_entry(arch);
    const spec::JsonValue* entry = record.find("nats_bench");
    REQUIRE(entry != nullptr);
    CHECK(entry->find("index")->as_integer() == expected.index);
    CHECK(entry->find("arch")->as_string() == arch);
    CHECK(entry->find("cifar10")->as_double() == expected.accuracy.cifar10);
    CHECK(entry->find("cifar100")->as_double() == expected.accuracy.cifar100);
    CHECK(entry->find("imagenet16_120")->as_double() == expected.accuracy.imagenet16_120);
    CHECK(record.find("skip_ratio")->find("skip")->as_integer() == count_of(arch, "skip_connect~"));
    // The progress line says it too.
    CHECK(has(r.err, "derived cell: NATS-Bench #" + std::to_string(expected.index) +
                         ", test accuracy CIFAR-10 " + percent(expected.accuracy.cifar10)));
    last_arch = arch;
  }
  CHECK(epochs == 2);
  // The last epoch's entry is the derived.json's.
  const spec::Space derived = spec::parse_file(run + "/derived.json");
  CHECK(derived.metadata.find("nats_bench")->find("arch")->as_string() == last_arch);
}
