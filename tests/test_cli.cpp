// The runner end to end: the built `cellgraph` binary on real files. The search and train
// cases use a tiny space on a 64-image Fashion-MNIST subset so each takes seconds.
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <sys/wait.h>

#include "algorithms/algorithm.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "spec/json_value.h"
#include "tests/support/cli.h"
#include "tests/support/run_files.h"
#include "tests/support/tiny_space.h"

using namespace cellgraph;

namespace {

namespace fs = std::filesystem;

const char* const kSource = CELLGRAPH_SOURCE_DIR;
const char* const kData = "fashion-mnist:" CELLGRAPH_FASHION_MNIST_DIR;

using testing::check_same_tensors;
using testing::has;
using testing::metric_values;
using testing::read_text;
using testing::Result;
using testing::TempDir;
using testing::write_tiny_space;

// Runs `cellgraph ARGS` (ARGS already shell-quoted where needed).
Result run_cli(const std::string& args) {
  static const TempDir kScratch("cellgraph_cli_out");
  return testing::run_cli(args, kScratch);
}

// 64 images, batch 8: 4 steps per epoch.
std::string small_search(const std::string& spec, const std::string& out) {
  return "search " + spec + " --out " + out + " --data " + kData +
         " --subset 64 --batch 8 --epochs 2 --log-every 1 --threads 1 --seed 3";
}

}  // namespace

TEST_CASE("cli: validate, info, help and flag errors") {
  const std::string darts = std::string(kSource) + "/examples/spaces/darts_cnn.json";
  Result r = run_cli("validate " + darts);
  CHECK(r.status == 0);
  CHECK(r.out == darts +
                     ": ok — 2 cell types, 28 edges, 896 candidate ops per network, "
                     "1930618 weights\n");

  const std::string bad = std::string(kSource) + "/tests/specs/bad/cell_no_nodes.json";
  r = run_cli("validate " + bad);
  CHECK(r.status == 1);
  CHECK(r.err == "cellgraph: error: " + bad +
                     ":/cells/0/nodes: a cell needs at least one node; got an empty 'nodes'\n");

  r = run_cli("info " + darts + " --json");
  CHECK(r.status == 0);
  const spec::JsonValue info = spec::parse_json_string(r.out, "info --json");
  CHECK(info.find("weights")->as_integer() == 1930618);
  CHECK(info.find("arch_parameters")->as_integer() == 224);
  CHECK(info.find("cells")->size() == 8);
  CHECK(run_cli("info " + darts).out.find("1,930,618") != std::string::npos);

  r = run_cli("search " + darts + " --epoch 3 --out x");
  CHECK(r.status == 1);
  CHECK(r.err ==
        "cellgraph: error: cellgraph search: unknown flag '--epoch'; did you mean '--epochs'?\n");
  r = run_cli("search " + darts + " --out x --batch many");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--batch: expected an integer in [1, 1048576], got 'many'"));
  r = run_cli("search " + darts + " --out");
  CHECK(has(r.err, "--out: missing value"));
  r = run_cli("bench " + darts + " --steps 0");
  CHECK(has(r.err, "--steps: expected an integer in [1, 100000], got '0'"));
  r = run_cli("serach");
  CHECK(r.status == 1);
  CHECK(has(r.err, "unknown command 'serach'; did you mean 'search'?"));
  r = run_cli("");
  CHECK(r.status == 1);

  CHECK(run_cli("--version").out.rfind("cellgraph ", 0) == 0);
  CHECK(has(run_cli("--help").out, "search"));
  for (const char* command : {"validate", "info", "search", "derive", "train", "eval", "bench"}) {
    CAPTURE(command);
    r = run_cli(std::string(command) + " --help");
    CHECK(r.status == 0);
    CHECK(has(r.out, std::string("usage: cellgraph ") + command));
  }
  // Help names every algorithm, from the registry (search once said "(DARTS)").
  const std::string search_help = run_cli("search --help").out;
  const std::string bench_help = run_cli("bench --help").out;
  CHECK(!has(search_help, "(DARTS)"));
  for (const algorithms::Algorithm* a : algorithms::algorithms()) {
    CAPTURE(a->name());
    CHECK(has(search_help, a->name()));
    CHECK(has(bench_help, a->name()));
  }
  // An option of another algorithm is refused, naming its owner, not silently ignored.
  r = run_cli("search " + darts + " --out x --nasp-eta 0.1");
  CHECK(r.status == 1);
  CHECK(r.err ==
        "cellgraph: error: --nasp-eta is an option of --algo nasp; this search runs --algo "
        "darts, which would ignore it\n");
  r = run_cli("search " + darts + " --out x --algo ista --ista-epsilon 0.1");
  CHECK(has(r.err, "--ista-epsilon is an option of --algo ista-onestage;"));
  r = run_cli("search " + darts + " --out x --algo milenas --ista-solver ista");
  CHECK(has(r.err, "--ista-solver is an option of --algo ista or ista-onestage;"));
  CHECK(!std::filesystem::exists("x"));
}

TEST_CASE("cli: validate reports what only compiling shows, with the spec's file and pointer") {
  // Every bad spec that reads but does not compile: validate gives compile's message
  // (tests/specs/bad/*.expected, which name the file without its folder).
  const std::string bad = std::string(kSource) + "/tests/specs/bad/";
  const std::string validate = "validate " + bad, message = "cellgraph: error: " + bad;
  int compile_failures = 0;
  for (const auto& entry : fs::directory_iterator(bad)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("compile_", 0) != 0 || entry.path().extension() != ".json") continue;
    CAPTURE(name);
    std::string expected = read_text(bad + entry.path().stem().string() + ".expected");
    while (!expected.empty() && expected.back() == '\n') expected.pop_back();
    REQUIRE(expected.rfind(name + ":/", 0) == 0);
    const Result r = run_cli(validate + name);
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(r.err == message + expected + "\n");
    ++compile_failures;
  }
  CHECK(compile_failures >= 5);

  Result r = run_cli("validate " + bad + "arch_share_none.json");
  CHECK(r.status == 1);
  CHECK(has(r.err,
            "arch_share_none.json:/arch/share: \"share\": \"none\" (one architecture per "
            "cell instance) is not supported: derivation needs one architecture per cell "
            "type"));

  // A recurrent language model compiles: 36 edges x 5 ops; weights: embedding 10000 x 300,
  // decoder bias 10000, W0 600 x 600, 8 node matrices 600 x 300.
  const std::string rnn = std::string(kSource) + "/tests/specs/good/darts_rnn.json";
  r = run_cli("validate " + rnn);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out == rnn + ": ok — 1 cell types, 36 edges, 180 candidate ops per network, " +
                     std::to_string(10000 * 300 + 10000 + 600 * 600 + 8 * 600 * 300) +
                     " weights\n");
}

TEST_CASE("cli: bench --json times each pass and reports wall and CPU seconds per step") {
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  const Result r = run_cli("bench " + spec + " --batch 2 --steps 2 --warmup 0 --threads 1 --json");
  REQUIRE(r.status == 0);
  const spec::JsonValue j = spec::parse_json_string(r.out, "bench --json");
  CHECK(j.find("steps")->as_integer() == 2);
  REQUIRE(j.contains("cpu_seconds_per_step"));
  const double wall = j.find("seconds_per_step")->as_double();
  const double cpu = j.find("cpu_seconds_per_step")->as_double();
  CHECK(wall > 0);
  // One thread: the process's CPU time per step is positive, and at most the wall time
  // plus the clock's granularity (getrusage counts in scheduler ticks).
  CHECK(cpu > 0);
  CHECK(cpu <= wall + 0.02);
  std::vector<std::string> passes;
  for (const spec::JsonValue& pass : j.find("passes")->items())
    passes.push_back(pass.find("name")->as_string());
  CHECK(passes == std::vector<std::string>{"update_architecture_first_order", "update_weights"});
}

TEST_CASE("cli: bench --json lists the candidates each sparse weight step ran") {
  const std::string spec = std::string(kSource) + "/examples/spaces/darts_cnn_small.json";
  const auto run = [&](const std::string& algo) {
    const Result r = run_cli("bench " + spec + " --algo " + algo +
                             " --batch 2 --steps 2 --warmup 1 --threads 1 --json");
    REQUIRE(r.status == 0);
    return spec::parse_json_string(r.out, "bench --json");
  };
  // The cell's nodes take edge rows 0-1, 2-4, 5-8 and 9-13; NASP and ISTA-NAS keep two
  // candidates per node (NASP on two different edges), never `none`.
  const auto node_of = [](int64_t row) { return row < 2 ? 0 : row < 5 ? 1 : row < 9 ? 2 : 3; };
  for (const std::string algo : {"nasp", "ista"}) {
    CAPTURE(algo);
    const spec::JsonValue j = run(algo);
    REQUIRE(j.contains("weight_step_selections"));
    const auto& steps = j.find("weight_step_selections")->items();
    CHECK(steps.size() == 4);  // before the first step, then 1 warm-up + 2 timed steps
    for (const spec::JsonValue& step : steps) {
      for (const std::string group : {"normal", "reduce"}) {
        REQUIRE(step.contains(group));
        std::vector<int> per_node(4, 0);
        std::set<int64_t> rows;
        for (const spec::JsonValue& entry : step.find(group)->items()) {
          const int64_t row = entry.items()[0].as_integer();
          CHECK(entry.items()[1].as_string() != "none");
          ++per_node[size_t(node_of(row))];
          rows.insert(row);
        }
        CHECK(per_node == std::vector<int>{2, 2, 2, 2});
        if (algo == "nasp") CHECK(rows.size() == 8);
      }
    }
    // Timed steps after the first (here step 2, entry 3) that ran other candidates than
    // the step before.
    CHECK(j.find("timed_selection_changes")->as_integer() ==
          (spec::dump(steps[3]) == spec::dump(steps[2]) ? 0 : 1));
  }
  // A dense step (every coefficient non-zero) lists none.
  CHECK_FALSE(run("darts").contains("weight_step_selections"));
}

TEST_CASE("cli: bench --recompute depthwise keeps less than relu, relu less than none") {
  const std::string spec = std::string(kSource) + "/examples/spaces/darts_cnn_small.json";
  auto peak = [&](const std::string& level) {
    const Result r =
        run_cli("bench " + spec +
                " --batch 8 --steps 1 --warmup 0 --threads 1 --json --recompute " + level);
    REQUIRE(r.status == 0);
    return spec::parse_json_string(r.out, "bench --json").find("peak_bytes")->as_integer();
  };
  const int64_t none = peak("none"), relu = peak("relu"), depthwise = peak("depthwise");
  CHECK(relu < none);
  CHECK(depthwise < relu);
  const Result bad = run_cli("bench " + spec + " --recompute all");
  CHECK(bad.status == 1);
  CHECK(bad.err.find("--recompute: expected relu, depthwise or none, got 'all'") !=
        std::string::npos);
}

TEST_CASE("cli: bench takes the algorithm's own flags, and NASP's two passes peak lower") {
  const std::string spec = std::string(kSource) + "/examples/spaces/darts_cnn_small.json";
  auto arch_peak = [&](const std::string& passes) {
    // With one pass the step's peak is the architecture pass's (every candidate's output
    // kept); two passes keep none of them past their sum (measured 99 -> 31 MiB).
    const Result r = run_cli("bench " + spec +
                             " --algo nasp --batch 16 --steps 1 --warmup 0 --threads 1 --json "
                             "--nasp-arch-passes " +
                             passes);
    REQUIRE(r.status == 0);
    return spec::parse_json_string(r.out, "bench --json").find("peak_bytes")->as_integer();
  };
  CHECK(arch_peak("two") < arch_peak("one"));
  const Result other = run_cli("bench " + spec + " --algo darts --nasp-arch-passes one");
  CHECK(other.status == 1);
  CHECK(other.err.find("--nasp-arch-passes is an option of --algo nasp; this bench runs --algo "
                       "darts, which would ignore it") != std::string::npos);
}

TEST_CASE("cli: bench on a language model steps on token ids with its state carried") {
  TempDir dir;
  const std::string spec = dir / "tiny_rnn.json";
  std::ofstream(spec) << testing::kTinyRnnSpace;
  const Result r = run_cli("bench " + spec + " --batch 4 --steps 3 --warmup 1 --threads 1 --json");
  REQUIRE(r.status == 0);
  const spec::JsonValue j = spec::parse_json_string(r.out, "bench --json");
  CHECK(j.find("tokens_per_sample")->as_integer() == 3);
  CHECK(j.find("vocabulary")->as_integer() == 5);
  REQUIRE(j.contains("state"));
  CHECK(has(j.find("state")->as_string(), "carried"));
  // The PyTorch reference's count (bench/rnn_step_torch.py): embedding = tied decoder
  // weight V*H once, decoder bias V, W0 (2H)^2, one H x 2H matrix per node; H 3, V 5, 2 nodes.
  CHECK(j.find("weights")->as_integer() == 5 * 3 + 5 + 6 * 6 + 2 * 3 * 6);
  CHECK(j.find("seconds_per_step")->as_double() > 0);
}

TEST_CASE("cli: search writes its run directory and --resume continues it bit-identically") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  // Uninterrupted: 6 steps (an epoch ends at 4).
  Result r = run_cli(small_search(spec, dir / "whole") + " --max-steps 6");
  REQUIRE(r.status == 0);
  CHECK(has(r.err, "the data has [1, 28, 28] with 10 classes: using the data's"));
  for (const char* file :
       {"config.json", "metrics.jsonl", "checkpoint.bin", "derived.json", "genotype.txt"})
    CHECK(fs::exists(dir / ("whole/" + std::string(file))));
  CHECK(r.out == read_text(dir / "whole/genotype.txt"));
  CHECK(has(r.out, "Genotype(normal=["));

  // 3 steps, then a new process resumes to 6. config.json holds the search's own options and
  // the algorithm's, no other algorithm's; the run's config.json is made to look like one
  // written by the previous version (which wrote every algorithm's options): it still resumes.
  r = run_cli(small_search(spec, dir / "split") + " --max-steps 3");
  REQUIRE(r.status == 0);
  {
    spec::JsonValue config = spec::parse_json_file(dir / "split/config.json");
    for (const auto& member : config.members()) {
      const std::string& key = member.first;
      CAPTURE(key);
      CHECK(key.rfind("nasp_", 0) != 0);
      CHECK(key.rfind("ista_", 0) != 0);
      CHECK(key.rfind("milenas_", 0) != 0);
    }
    config.set("milenas_lambda", 1.0);
    config.set("nasp_eta", 0.0);
    config.set("nasp_optimizer", "sgd");
    config.set("ista_m", 7.0);
    config.set("ista_solver", "fista");
    std::ofstream(dir / "split/config.json") << spec::dump(config, 2);
  }
  r = run_cli("search --resume " + dir / "split" + " --max-steps 6 --threads 1");
  REQUIRE(r.status == 0);
  CHECK(metric_values(dir / "split/metrics.jsonl") == metric_values(dir / "whole/metrics.jsonl"));
  CHECK(metric_values(dir / "whole/metrics.jsonl").size() == 7);  // 6 logs, 1 epoch end
  check_same_tensors(dir / "whole/checkpoint.bin", dir / "split/checkpoint.bin");
  CHECK(read_text(dir / "split/derived.json") == read_text(dir / "whole/derived.json"));
  const spec::JsonValue config = spec::parse_json_file(dir / "split/config.json");
  CHECK(config.find("max_steps")->as_integer() == 6);
  CHECK(config.find("algo")->as_string() == "darts");

  // derive re-derives from the checkpoint.
  r = run_cli("derive " + dir / "split" + " --out " + dir / "again.json");
  CHECK(r.status == 0);
  CHECK(r.out == read_text(dir / "whole/genotype.txt"));
  CHECK(read_text(dir / "again.json") == read_text(dir / "whole/derived.json"));

  // Options other than --threads, --epochs and --max-steps cannot change on resume; a new
  // search cannot overwrite a run.
  r = run_cli("search --resume " + dir / "split" + " --lr 0.1");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--lr cannot be combined with --resume"));
  r = run_cli(small_search(spec, dir / "split"));
  CHECK(r.status == 1);
  CHECK(has(r.err, "already holds a run"));
}

TEST_CASE("cli: search --algo nasp and ista log their architecture and derive from checkpoints") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  for (const std::string algo : {"nasp", "ista"}) {
    CAPTURE(algo);
    const std::string out = dir / algo;
    Result r = run_cli(small_search(spec, out) + " --max-steps 4 --algo " + algo +
                       (algo == "ista" ? " --ista-m 5 --ista-solver ista"
                                       : " --nasp-eta 0.1 --nasp-optimizer adam"));
    REQUIRE(r.status == 0);
    CHECK(has(r.out, "Genotype(normal=["));
    const std::vector<std::string> lines = metric_values(out + "/metrics.jsonl");
    REQUIRE(lines.size() == 5);  // 4 logs, 1 epoch end
    CHECK(has(lines.back(), "\"argmax\""));
    CHECK(has(lines.back(), "\"sparse_codes\"") == (algo == "ista"));
    if (algo == "ista") {
      CHECK(has(lines.back(), "\"normal/a\":{\"support\":["));
      CHECK(has(lines.back(), "\"z_change\""));
    }
    const spec::JsonValue config = spec::parse_json_file(out + "/config.json");
    CHECK(config.find("algo")->as_string() == algo);
    if (algo == "ista") CHECK(config.find("ista_m")->as_double() == 5);
    if (algo == "ista") CHECK(config.find("ista_solver")->as_string() == "ista");
    if (algo == "nasp") CHECK(config.find("nasp_optimizer")->as_string() == "adam");
    r = run_cli("derive " + out + " --out " + dir / (algo + "_again.json"));
    CHECK(r.status == 0);
    CHECK(read_text(dir / (algo + "_again.json")) == read_text(out + "/derived.json"));
    // The derived network (ISTA-NAS: possibly parallel edges) exports.
    r = run_cli("export " + out + "/derived.json --onnx " + dir / (algo + ".onnx"));
    CHECK_MESSAGE(r.status == 0, r.err);
  }
  Result r = run_cli(small_search(spec, dir / "bad") + " --algo ista --ista-m 2.5");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--ista-m: expected an integer in [1, 1e+06], got '2.5'"));
  r = run_cli(small_search(spec, dir / "bad") + " --algo ista --ista-solver newton");
  CHECK(r.status == 1);
  CHECK(has(r.err, "--ista-solver: expected 'fista' or 'ista', got 'newton'"));
}

TEST_CASE("cli: train a derived network for a few steps, then eval it") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = write_tiny_space(dir);
  REQUIRE(run_cli(small_search(spec, dir / "search") + " --max-steps 1").status == 0);
  const std::string derived = dir / "search/derived.json";
  Result r = run_cli("train " + derived + " --out " + dir / "train" + " --data " + kData +
                     " --subset 64 --batch 8 --max-steps 2 --test-subset 40 --threads 1");
  REQUIRE(r.status == 0);
  CHECK(has(r.out, "test accuracy: "));
  CHECK(has(read_text(dir / "train/metrics.jsonl"), "\"kind\":\"test\""));
  r = run_cli("train --resume " + dir / "train" + " --max-steps 3 --threads 1");
  REQUIRE(r.status == 0);
  CHECK(io::load_checkpoint(dir / "train/checkpoint.bin").meta_int("step") == 3);

  r = run_cli("eval " + dir / "train" + " --json --test-subset 40 --threads 1");
  REQUIRE(r.status == 0);
  const spec::JsonValue result = spec::parse_json_string(r.out, "eval --json");
  CHECK(result.find("count")->as_integer() == 40);
  CHECK(result.find("step")->as_integer() == 3);
  CHECK(result.find("test_acc")->as_double() >= 0.0);
  CHECK(result.find("weights")->as_integer() > 0);

  // A spec's seeded initial weights, and refusing a search space.
  r = run_cli("eval " + derived + " --data " + kData + " --test-subset 40 --threads 1");
  CHECK(r.status == 0);
  CHECK(has(r.out, "test accuracy"));
  r = run_cli("train " + spec + " --out " + dir / "nope" + " --data " + kData);
  CHECK(r.status == 1);
  CHECK(has(r.err, "a search space"));
  CHECK(has(r.err, "cellgraph derive"));
}

// Ctrl-C and SIGTERM (kill, a scheduler's time limit) alike: the step finishes, the
// checkpoint is written, the exit status is 128 + the signal, and the run resumes.
TEST_CASE("cli: Ctrl-C and SIGTERM checkpoint, exit 128 + the signal, and the run resumes") {
  SKIP_WITHOUT_FASHION_MNIST();
  for (const int signal : {SIGINT, SIGTERM}) {
    CAPTURE(signal);
    TempDir dir;
    const std::string spec = write_tiny_space(dir);
    const std::string run = dir / "run";
    const std::string err = dir / "stderr.txt";
    const pid_t pid = testing::spawn_cli(
        {"search", spec, "--out", run, "--data", kData, "--subset", "64", "--batch", "8",
         "--epochs", "1000", "--log-every", "1", "--threads", "1"},
        err);
    REQUIRE(pid > 0);
    // Wait for the first metrics line: the loop is running.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (read_text(run + "/metrics.jsonl").empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::kill(pid, signal);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + signal);
    const std::string text = read_text(err);
    CHECK(has(text, "interrupted; resume with: cellgraph search --resume " + run));
    const io::Checkpoint ckpt = io::load_checkpoint(run + "/checkpoint.bin");
    const int64_t step = ckpt.meta_int("step");
    CHECK(step >= 1);
    const Result r = run_cli("search --resume " + run + " --max-steps " + std::to_string(step + 1));
    CHECK(r.status == 0);
    CHECK(io::load_checkpoint(run + "/checkpoint.bin").meta_int("step") == step + 1);
  }
}

TEST_CASE("cli: JSON values keep key order, integers, and report positioned errors") {
  const spec::JsonValue v = spec::parse_json_string(
      R"({"z": 1, "a": [true, null, 0.025, "x"], "big": 9007199254740993})", "config.json");
  REQUIRE(v.is_object());
  CHECK(v.members()[0].first == "z");
  CHECK(v.members()[1].first == "a");
  CHECK(v.find("big")->as_integer() == 9007199254740993);  // not rounded through a double
  CHECK(v.find("a")->items()[2].as_double() == 0.025);
  CHECK(spec::dump(v) == R"({"z":1,"a":[true,null,0.025,"x"],"big":9007199254740993})");
  spec::JsonValue copy = v;
  copy.set("z", 2.5);
  copy.set("new", "s");
  CHECK(spec::dump(copy) ==
        R"({"z":2.5,"a":[true,null,0.025,"x"],"big":9007199254740993,"new":"s"})");
  CHECK_THROWS_WITH_AS(spec::parse_json_string("{\n  \"a\": 1,\n  \"a\": 2}", "c.json"),
                       doctest::Contains("c.json: duplicate key 'a'"), Error);
  CHECK_THROWS_WITH_AS(spec::parse_json_string("{\n  \"a\": }", "c.json"),
                       doctest::Contains("c.json:line 2, column 8: "), Error);
  CHECK_THROWS_WITH_AS(spec::parse_json_file("/no/such/config.json"),
                       "/no/such/config.json: cannot open: No such file or directory", Error);
  const Result r = run_cli("derive /no/such/run");
  CHECK(r.status == 1);
  CHECK(r.err == "cellgraph: error: /no/such/run: no such run directory\n");
}
