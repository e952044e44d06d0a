// The run report: SVG charts with gaps for missing values (viz/svg_chart.h), and `cellgraph
// report` on a finished search, on one still in progress, and on metrics with holes.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
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

// A finished tiny search: 3 epochs of 4 steps, a log line every step.
std::string tiny_search(const TempDir& dir) {
  const std::string run = dir / "run";
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
