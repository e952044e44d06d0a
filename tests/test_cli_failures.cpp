// Runs that go wrong stop clearly: a diverged run, a damaged run directory or checkpoint, a
// failed start, settings the machine cannot take. Each case runs the built runner.
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <doctest/doctest.h>

#include "engine/backends/backend.h"
#include "engine/io/checkpoint.h"
#include "tests/support/cli.h"
#include "tests/support/run_files.h"

using namespace cellgraph;

namespace {

namespace fs = std::filesystem;

const char* const kData = "fashion-mnist:" CELLGRAPH_FASHION_MNIST_DIR;

using testing::has;
using testing::read_text;
using testing::Result;
using testing::TempDir;
using testing::write_tiny_space;

Result run_cli(const std::string& args) {
  static const TempDir kScratch("cellgraph_cli_failures");
  return testing::run_cli(args, kScratch);
}

// 64 images, batch 8: 4 steps per epoch.
std::string small_run(const std::string& command, const std::string& spec, const std::string& out) {
  return command + " " + spec + " --out " + out + " --data " + kData +
         " --subset 64 --batch 8 --epochs 2 --log-every 1 --threads 1 --seed 3";
}

// Rewrites a checkpoint (valid checksum, damaged contents): `meta` may change metadata
// values, `tensor` may change a tensor given its name.
template <typename Meta, typename TensorEdit>
void rewrite_checkpoint(const std::string& path, Meta meta, TensorEdit tensor) {
  const io::Checkpoint in = io::load_checkpoint(path);
  io::Checkpoint out;
  for (const auto& [key, value] : in.metadata()) out.set_meta(key, meta(key, value));
  for (const auto& [name, t] : in.tensors()) {
    Tensor copy = t.clone();
    tensor(name, copy);
    out.add(name, copy);
  }
  io::save_checkpoint(out, path);
}

// One epoch of the tiny search in DIR/run (checkpoint at step 4).
std::string one_epoch(const TempDir& dir) {
  std::string run = dir / "run";
  const Result r = run_cli(small_run("search", write_tiny_space(dir), run) + " --max-steps 4");
  REQUIRE(r.status == 0);
  return run;
}

}  // namespace

TEST_CASE(
    "cli failures: a diverging search or training stops at the step, exit 1, nothing derived") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  const std::string run = dir / "run";
  Result r = run_cli(small_run("search", spec, run) + " --lr 1e30");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "cellgraph: error: step "));
  CHECK(has(r.err, "the run diverged; lower the learning rates (--lr 1e+30"));
  CHECK(has(r.err, "no checkpoint was written"));
  CHECK(!fs::exists(run + "/derived.json"));
  CHECK(!fs::exists(run + "/checkpoint.bin"));

  // Train: the same stop.
  const std::string fixed = std::string(CELLGRAPH_SOURCE_DIR) + "/examples/networks/darts_v2.json";
  r = run_cli("train " + fixed + " --out " + (dir / "train") + " --data " + kData +
              " --subset 32 --batch 8 --epochs 1 --threads 1 --cells 3 --channels 4 --lr 1e30");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "the run diverged; lower the learning rate (--lr 1e+30)"));
}

TEST_CASE("cli failures: a diverging run keeps its last good checkpoint untouched") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string run = one_epoch(dir);
  const std::string before = read_text(run + "/checkpoint.bin");
  // Resuming reads the learning rate from config.json: make the next epoch diverge.
  std::string config = read_text(run + "/config.json");
  const size_t at = config.find("\"lr\": 0.025");
  REQUIRE(at != std::string::npos);
  config.replace(at, 11, "\"lr\": 1e30");
  std::ofstream(run + "/config.json") << config;
  const Result r = run_cli("search --resume " + run + " --max-steps 8");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "cellgraph: error: step "));
  CHECK(has(r.err, run + "/checkpoint.bin (step 4) is the last good state, kept as it was"));
  CHECK(read_text(run + "/checkpoint.bin") == before);
  // derive still works from the good state.
  CHECK(run_cli("derive " + run).status == 0);
}

TEST_CASE("cli failures: checkpoint values out of range are refused by name") {
  SKIP_WITHOUT_FASHION_MNIST();
  const auto keep_tensor = [](const std::string&, Tensor&) {};
  const auto keep_meta = [](const std::string&, const std::string& v) { return v; };
  struct Case {
    const char* key;
    const char* value;
    const char* expected;
  };
  for (const Case& c : {Case{"step", "9223372036854775807", "inconsistent step counters"},
                        Case{"epoch", "0", "inconsistent step counters"},
                        Case{"metrics_bytes", "-5", "metadata 'metrics_bytes' is -5"},
                        Case{"elapsed", "nan", "metadata 'elapsed'"}}) {
    CAPTURE(c.key);
    TempDir dir;
    const std::string run = one_epoch(dir);
    rewrite_checkpoint(
        run + "/checkpoint.bin",
        [&](const std::string& key, const std::string& v) {
          return key == c.key ? std::string(c.value) : v;
        },
        keep_tensor);
    CHECK(io::load_checkpoint(run + "/checkpoint.bin").meta(c.key) == c.value);
    const Result r = run_cli("search --resume " + run);
    CAPTURE(r.err);
    CHECK(r.status == 1);
    CHECK(has(r.err, c.expected));
  }
  // A NaN weight: refused on resume, by derive's and eval's readers alike.
  TempDir dir;
  const std::string run = one_epoch(dir);
  std::string poisoned;
  rewrite_checkpoint(run + "/checkpoint.bin", keep_meta, [&](const std::string& name, Tensor& t) {
    if (!poisoned.empty() || name.rfind("param/", 0) != 0) return;
    t.data()[0] = std::numeric_limits<float>::quiet_NaN();
    poisoned = name;
  });
  REQUIRE(!poisoned.empty());
  Result r = run_cli("search --resume " + run);
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "entry '" + poisoned + "' holds inf or NaN"));
}

TEST_CASE(
    "cli failures: a metrics log shorter than the checkpoint says is refused, a longer one cut") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string run = one_epoch(dir);
  const std::string log = read_text(run + "/metrics.jsonl");
  REQUIRE(log.size() > 10);
  std::ofstream(run + "/metrics.jsonl", std::ios::trunc) << log.substr(0, log.size() - 10);
  Result r = run_cli("search --resume " + run);
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "metrics.jsonl: " + std::to_string(log.size() - 10) +
                       " bytes, but the "
                       "checkpoint was written after " +
                       std::to_string(log.size()) + " bytes"));
  fs::remove(run + "/metrics.jsonl");
  r = run_cli("search --resume " + run);
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "metrics.jsonl: missing, but the checkpoint was written after"));
  // Lines after the checkpoint (a crash between a log line and the next checkpoint): cut.
  std::ofstream(run + "/metrics.jsonl", std::ios::trunc) << log << "{\"partial\": ";
  r = run_cli("search --resume " + run + " --max-steps 5");
  CHECK(r.status == 0);
  const std::string resumed = read_text(run + "/metrics.jsonl");
  CHECK(resumed.substr(0, log.size()) == log);
  CHECK(!has(resumed, "partial"));
}

TEST_CASE("cli failures: a failed start leaves no run directory, absurd settings are refused") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  Result r = run_cli("search " + spec + " --out " + (dir / "bad_data") + " --data mnist:/no/such");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(!fs::exists(dir / "bad_data"));
  r = run_cli("train " + std::string(CELLGRAPH_SOURCE_DIR) +
              "/examples/networks/darts_v2.json --out " + (dir / "bad_train") +
              " --data cifar10:/no/such");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(!fs::exists(dir / "bad_train"));

  // A batch whose activations cannot fit in this machine's memory: refused with the estimate.
  r = run_cli("search " + std::string(CELLGRAPH_SOURCE_DIR) +
              "/examples/spaces/darts_cnn.json --out " + (dir / "huge") + " --data " + kData +
              " --batch 30000");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "--batch 30000: a step would hold about "));
  CHECK(has(r.err, "GiB of activations"));
  CHECK(has(r.err, "use a batch of at most "));
  CHECK(!fs::exists(dir / "huge"));

  // Threads: capped at 4 per core, with a note.
  r = run_cli("search " + spec + " --out " + (dir / "threads") + " --data " + kData +
              " --subset 64 --batch 8 --max-steps 1 --threads 100000");
  CHECK(r.status == 0);
  CHECK(has(r.err, "--threads 100000 is more than 4 per core"));
}

TEST_CASE("cli failures: a truncated test split is reported before training starts") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const fs::path source(CELLGRAPH_FASHION_MNIST_DIR);
  const fs::path data = dir / "fashion";
  fs::create_directories(data);
  for (const char* f :
       {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(source / f, data / f);
  // The test images cut to half: the gzip stream ends early.
  const std::string images = read_text((source / "t10k-images-idx3-ubyte.gz").string());
  std::ofstream(data / "t10k-images-idx3-ubyte.gz", std::ios::binary)
      << images.substr(0, images.size() / 2);
  const std::string run = dir / "train";
  const Result r = run_cli("train " + std::string(CELLGRAPH_SOURCE_DIR) +
                           "/examples/networks/darts_v2.json --out " + run +
                           " --data fashion-mnist:" + data.string() +
                           " --subset 32 --batch 8 --epochs 1 --cells 3 --channels 4");
  CAPTURE(r.err);
  CHECK(r.status == 1);
  CHECK(has(r.err, "t10k-images-idx3-ubyte.gz"));
  CHECK(!has(r.err, "training "));  // no step ran
  CHECK(!fs::exists(run + "/checkpoint.bin"));
}

TEST_CASE("cli failures: --device cpu is the default, another device is refused before any work") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  // The same run with and without --device cpu: the same losses, bit for bit.
  auto losses = [&](const std::string& out, const std::string& extra) {
    const Result r =
        run_cli("search " + spec + " --out " + out + " --data " + kData +
                " --subset 64 --batch 8 --max-steps 3 --log-every 1 --threads 1" + extra);
    CAPTURE(r.err);
    CHECK(r.status == 0);
    std::string found;
    const std::string metrics = read_text(out + "/metrics.jsonl");
    for (size_t at = metrics.find("\"train_loss\":"); at != std::string::npos;
         at = metrics.find("\"train_loss\":", at + 1))
      found += metrics.substr(at, metrics.find(',', at) - at) + ";";
    return found;
  };
  const std::string plain = losses(dir / "plain", "");
  CHECK(!plain.empty());
  CHECK(plain == losses(dir / "cpu", " --device cpu"));

  for (const std::string command : {"search", "train", "eval", "infer", "bench"}) {
    CAPTURE(command);
    const bool run_dir = command == "search" || command == "train";
    const std::string target =
        command == "search" || command == "bench"
            ? spec
            : std::string(CELLGRAPH_SOURCE_DIR) + "/examples/networks/darts_v2.json";
    const std::string out = dir / (command + "_tpu");
    std::string args = command;
    args += " " + target;
    if (run_dir) args += " --out " + out;
    Result r = run_cli(args + " --device tpu");
    CHECK(r.status == 1);
    CHECK(has(r.err, "--device: expected cpu or cuda, got 'tpu'"));
    if (!backend_available(Device::cuda)) {  // a build without CUDA, or no GPU
      r = run_cli(args + " --device cuda");
      CHECK(r.status == 1);
      CHECK(has(r.err, "device 'cuda' requested but "));
    }
    CHECK(!fs::exists(out));
  }
  // A resumed run may change device (checkpoints hold host copies).
  const Result r = run_cli("search --resume " + (dir / "cpu") + " --device cpu --max-steps 4");
  CAPTURE(r.err);
  CHECK(r.status == 0);
}
