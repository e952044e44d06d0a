// The run report: SVG charts with gaps for missing values (viz/svg_chart.h), and `cellgraph
// report` on a finished search, on one still in progress, on metrics with holes, the sparse
// algorithms' active candidates, and --watch.
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "tests/support/cli.h"
#include "tests/support/run_files.h"
#include "tests/support/tiny_space.h"
#include "viz/graphviz/render.h"
#include "viz/svg_chart.h"

using namespace cellgraph;

namespace {
using testing::has;
using testing::TempDir;
namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int occurrences(const std::string& text, const std::string& part) {
  int n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// The d attribute of the series path named `name`.
std::string path_of(const std::string& svg, const std::string& name) {
  const size_t at = svg.find("data-name=\"" + name + "\" d=\"");
  if (at == std::string::npos) return "";
  const size_t start = svg.find("d=\"", at) + 3;
  return svg.substr(start, svg.find('"', start) - start);
}

// The y coordinates of a path's points ("Mx y Lx y ...").
std::vector<std::string> ys_of(const std::string& d) {
  std::vector<std::string> out;
  std::istringstream in(d);
  std::string x, y;
  while (in >> x >> y) out.push_back(y);
  return out;
}

// A finished tiny search: 3 epochs of 4 steps, a log line every step.
std::string tiny_search(const TempDir& dir) {
  std::string run = dir / "run";
  const testing::Result r =
      testing::run_cli("search " + testing::write_tiny_space(dir) + " --out " + run +
                           " --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
                           " --subset 64 --batch 8 --epochs 3 --log-every 1 --threads 1 --seed 3",
                       dir);
  REQUIRE(r.status == 0);
  return run;
}
}  // namespace

TEST_CASE("report: a line chart breaks at missing values, and says when it has none") {
  const viz::Series s{"val", "red", {1, 2, 3, 4, 5}, {1.0, kNaN, 3.0, 4.0, INFINITY}};
  const std::string svg = viz::line_chart_svg("loss", "step", {s});
  const std::string d = path_of(svg, "val");
  CHECK(occurrences(d, "M") == 2);  // 1 | 3-4: two segments
  CHECK(occurrences(d, "L") == 1);
  const std::string empty = viz::line_chart_svg("loss", "step", {{"v", "red", {1}, {kNaN}}});
  CHECK(has(empty, "no values yet"));
  CHECK(!has(empty, "<path"));
  // A heatmap draws a missing value hatched, with "missing" in its tooltip.
  const std::string heat = viz::heatmap_svg("e", {"r0"}, {"a", "b"}, {{0.5}}, 0, 1, true);
  CHECK(occurrences(heat, "class=\"cell\"") == 2);
  CHECK(has(heat, "fill=\"url(#gap)\"><title>r0 b: missing</title>"));
  CHECK(has(heat, "<title>r0 a: 0.5</title>"));
}

TEST_CASE("report: a finished search, one in progress, and metrics with holes") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string run = tiny_search(dir);
  testing::Result r = testing::run_cli("report " + run, dir);
  REQUIRE(r.status == 0);
  CHECK(r.out == run + "/report.html\n");
  std::string html = testing::read_text(run + "/report.html");
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  // Self-contained: no script, no stylesheet or image fetched from anywhere.
  CHECK(!has(html, "<script"));
  CHECK(!has(html, "<link"));
  CHECK(!has(html, "src="));
  // Loss, accuracy, lr, step time, the derived cell's skip ratio (not a NATS space).
  CHECK(occurrences(html, "class=\"chart\"") == 5);
  CHECK(has(html, "skip-connection ratio"));
  CHECK(!has(html, "NATS-Bench test accuracy"));
  CHECK(occurrences(path_of(html, "derived cell"), "L") == 2);  // 3 epochs
  CHECK(!path_of(html, "train").empty());
  CHECK(!path_of(html, "validation").empty());
  // One group (normal: 5 edges x 4 candidates) at each of 3 epochs.
  CHECK(occurrences(html, "class=\"heatmap\"") == 3);
  CHECK(occurrences(html, "class=\"cell\"") == 3 * 5 * 4);
  CHECK(has(html, "derived.json (the search&#39;s result)"));
  std::string genotype = testing::read_text(run + "/genotype.txt");
  genotype.erase(genotype.find_last_not_of('\n') + 1);
  CHECK(has(html, viz::xml_escaped(genotype)));
  if (viz::graphviz_available()) {
    CHECK(has(html, "<div class=\"drawing\"><svg"));
  } else {
    CHECK(has(html, "built without graphviz"));
  }
  CHECK(has(html, "<tr><th>algo</th><td>darts</td></tr>"));

  // In progress: no derived.json yet, a line half written; cells come from the checkpoint.
  fs::remove(run + "/derived.json");
  fs::remove(run + "/genotype.txt");
  std::string metrics = testing::read_text(run + "/metrics.jsonl");
  std::ofstream(run + "/metrics.jsonl", std::ios::app) << "{\"kind\":\"log\",\"epo";
  r = testing::run_cli("report " + run + " --out " + (dir / "progress.html"), dir);
  REQUIRE(r.status == 0);
  html = testing::read_text(dir / "progress.html");
  CHECK(has(html, "derived from the latest checkpoint (step 12); the search has not finished"));
  CHECK(has(html, viz::xml_escaped(genotype)));

  // Holes: a validation loss that diverged (null) and an architecture weight missing.
  const std::string epoch2 = "\"kind\":\"epoch\",\"epoch\":2,";
  const size_t line_at = metrics.find(epoch2);
  REQUIRE(line_at != std::string::npos);
  const size_t val = metrics.find("\"val_loss\":", line_at);
  metrics.replace(val, metrics.find(',', val) - val, "\"val_loss\":null");
  const size_t values = metrics.find("\"values\":[[", line_at);
  metrics.replace(values + 11, metrics.find(',', values + 11) - (values + 11), "null");
  std::ofstream(run + "/metrics.jsonl", std::ios::trunc) << metrics;
  r = testing::run_cli("report " + run + " --out " + (dir / "holes.html"), dir);
  REQUIRE(r.status == 0);
  html = testing::read_text(dir / "holes.html");
  // Epoch 2's validation point is missing: the line restarts after it.
  CHECK(occurrences(path_of(html, "validation"), "M") == 2);
  CHECK(occurrences(html, "fill=\"url(#gap)\"") == 1);

  // Not a run: the error names the directory.
  r = testing::run_cli("report " + (dir / "nothing"), dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, dir / "nothing"));
}

TEST_CASE("report: a NATS-Bench search shows its derived cell's benchmark accuracies per epoch") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string spec = dir / "nats.json";
  std::ofstream(spec) << testing::kTinyNatsSpace;
  const std::string run = dir / "run";
  testing::Result r = testing::run_cli("search " + spec + " --out " + run +
                                           " --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
                                           " --subset 32 --batch 8 --epochs 2 --threads 1 --seed 5",
                                       dir);
  REQUIRE(r.status == 0);
  r = testing::run_cli("report " + run, dir);
  REQUIRE(r.status == 0);
  const std::string html = testing::read_text(run + "/report.html");
  CHECK(has(html, "NATS-Bench test accuracy of the derived cell (%)"));
  for (const char* name : {"CIFAR-10", "CIFAR-100", "ImageNet16-120"}) {
    CAPTURE(name);
    CHECK(occurrences(path_of(html, name), "M") == 1);  // one point per epoch, no gap
    CHECK(occurrences(path_of(html, name), "L") == 1);
  }
  // The derived cell's NATS-Bench entry is among what is known about it.
  CHECK(has(html, "&quot;nats_bench&quot;"));
}

TEST_CASE("report: the active candidates of sparse algorithms per epoch, gaps where missing") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string run = dir / "run";
  testing::Result r =
      testing::run_cli("search " + testing::write_tiny_space(dir) + " --out " + run +
                           " --algo ista --data fashion-mnist:" + CELLGRAPH_FASHION_MNIST_DIR +
                           " --subset 64 --batch 8 --epochs 3 --threads 1 --seed 3",
                       dir);
  REQUIRE(r.status == 0);
  r = testing::run_cli("report " + run, dir);
  REQUIRE(r.status == 0);
  std::string html = testing::read_text(run + "/report.html");
  CHECK(has(html, "active candidates (supported edge-op entries per cell type)"));
  const std::string supports = path_of(html, "ISTA-NAS supports");
  CHECK(occurrences(supports, "M") == 1);  // one point per epoch line, no gap
  CHECK(occurrences(supports, "L") == 2);
  CHECK(!has(html, "data-name=\"weight step\""));  // nothing SparseNAS-like invented

  // SparseNAS' epoch lines carry sparsenas.candidates_per_step; one epoch's weight-step
  // count missing (null) is a gap in its line.
  std::string metrics = testing::read_text(run + "/metrics.jsonl");
  int epoch = 0;
  for (size_t at = metrics.find("\"kind\":\"epoch\","); at != std::string::npos;
       at = metrics.find("\"kind\":\"epoch\",", at + 1)) {
    ++epoch;
    const std::string weight = epoch == 2 ? "null" : std::to_string(20 - 4 * epoch);
    metrics.insert(
        at + 15, "\"sparsenas\":{\"candidates_per_step\":{\"total\":40,\"weight_step\":" + weight +
                     ",\"arch_recorded\":12,\"arch_forward_only\":8}},");
  }
  REQUIRE(epoch == 3);
  std::ofstream(run + "/metrics.jsonl", std::ios::trunc) << metrics;
  r = testing::run_cli("report " + run + " --out " + (dir / "sparsenas.html"), dir);
  REQUIRE(r.status == 0);
  html = testing::read_text(dir / "sparsenas.html");
  CHECK(occurrences(path_of(html, "weight step"), "M") == 2);  // 1 | 3
  CHECK(occurrences(path_of(html, "weight step"), "L") == 0);
  for (const char* name : {"arch. pass, recorded", "arch. pass, forward only", "all candidates"}) {
    CAPTURE(name);
    CHECK(occurrences(path_of(html, name), "L") == 2);
  }
  // The two recorded counts are constant: flat lines at different heights.
  const std::vector<std::string> recorded = ys_of(path_of(html, "arch. pass, recorded")),
                                 forward_only = ys_of(path_of(html, "arch. pass, forward only"));
  REQUIRE(recorded.size() == 3);
  REQUIRE(forward_only.size() == 3);
  CHECK(recorded[0] == recorded[2]);
  CHECK(forward_only[0] == forward_only[2]);
  CHECK(recorded[0] != forward_only[0]);
}

TEST_CASE("report --watch: rewrites the page until the run has finished, or until Ctrl-C") {
  SKIP_WITHOUT_FASHION_MNIST();
  TempDir dir;
  const std::string run = tiny_search(dir);
  const std::string cli = CELLGRAPH_CLI_PATH;
  // A finished run: one report, then the watch ends by itself.
  testing::Result r =
      testing::run_shell("timeout 60 " + cli + " report " + run + " --watch --interval 0.05", dir);
  CHECK(r.status == 0);
  CHECK(r.out == run + "/report.html\n");
  CHECK(has(r.err, "report 1 written"));
  CHECK(!has(r.err, "report 2 written"));
  CHECK(has(r.err, "the run has finished"));
  CHECK(has(testing::read_text(run + "/report.html"), "class=\"heatmap\""));
  r = testing::run_cli("report " + run + " --interval 1", dir);
  CHECK(r.status == 1);
  CHECK(has(r.err, "--watch"));

  // In progress: config.json says 5 epochs, the checkpoint holds 3 (as after a resume with
  // --epochs 5). The watch goes on until the config says the checkpoint is the last one.
  const std::string config = testing::read_text(run + "/config.json");
  const size_t at = config.find("\"epochs\": 3,");
  REQUIRE(at != std::string::npos);
  std::string longer = config;
  longer.replace(at, 12, "\"epochs\": 5,");
  // Rewritten as the runner writes it (a temporary file renamed over it), so the watcher
  // never sees it half written.
  auto replace_config = [&](const std::string& text) {
    std::ofstream(run + "/config.json.new", std::ios::trunc) << text;
    fs::rename(run + "/config.json.new", run + "/config.json");
  };
  replace_config(longer);
  auto wait_for = [](const std::string& file, const std::string& text) {
    for (int i = 0; i < 600 && !has(testing::read_text(file), text); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return has(testing::read_text(file), text);
  };
  const std::string log = dir / "watch.err";
  pid_t pid = testing::spawn_cli({"report", run, "--watch", "--interval", "0.05"}, log);
  REQUIRE(pid > 0);
  CHECK(wait_for(log, "report 3 written"));
  int status = 0;
  CHECK(waitpid(pid, &status, WNOHANG) == 0);  // still watching
  replace_config(config);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(has(testing::read_text(log), "the run has finished"));

  // A config.json that cannot be read mid-watch (another program replacing it) skips that
  // round and the watch goes on; it ends once the file says the run has finished.
  replace_config(longer);
  pid = testing::spawn_cli({"report", run, "--watch", "--interval", "0.05"}, log);
  REQUIRE(pid > 0);
  CHECK(wait_for(log, "report 2 written"));
  replace_config("{ not json");
  CHECK(wait_for(log, "skipped"));
  CHECK(waitpid(pid, &status, WNOHANG) == 0);
  replace_config(config);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(has(testing::read_text(log), "the run has finished"));

  // Ctrl-C while the run goes on: the watch stops, status 0.
  replace_config(longer);
  pid = testing::spawn_cli({"report", run, "--watch", "--interval", "0.05"}, log);
  REQUIRE(pid > 0);
  CHECK(wait_for(log, "report 2 written"));
  ::kill(pid, SIGINT);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(has(testing::read_text(log), "stopped watching"));
}
