// cellgraph report RUN_DIR [--out FILE] [--watch [--interval S]]: one self-contained HTML page
// about a run (no script, no network): its state, loss and accuracy curves, the learning rate and
// step time, per-epoch heatmaps of each architecture group's weights (metrics.jsonl's
// arch_weights), the derived cells drawn, the genotype and the configuration. Charts are inline SVG
// from viz/svg_chart.h; the drawing is graphviz's svg when the build has it, else its DOT text.
//
// It reads only what a run writes as it goes, so a run still in progress (or interrupted)
// reports what it has: a line being written at the end of metrics.jsonl is skipped, and the
// cells are derived from the latest checkpoint when derived.json is not there yet.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "algorithms/search_session.h"
#include "engine/error.h"
#include "engine/io/checkpoint.h"
#include "engine/io/file.h"
#include "spec/json_value.h"
#include "spec/parse.h"
#include "tools/cellgraph/commands.h"
#include "tools/cellgraph/progress.h"
#include "tools/cellgraph/run_dir.h"
#include "viz/cell_dot.h"
#include "viz/graphviz/render.h"
#include "viz/svg_chart.h"

namespace cellgraph::tools {

namespace {

namespace fs = std::filesystem;
using spec::JsonValue;
using viz::xml_escaped;

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kMostHeatmaps = 12;  // epochs shown per group, evenly spaced, the last included

// The complete lines of metrics.jsonl (a last line without its newline is being written).
std::vector<JsonValue> read_metrics(const std::string& path) {
  std::vector<JsonValue> lines;
  if (!fs::exists(path)) return lines;
  const std::string text = io::read_file(path);
  size_t at = 0;
  int number = 0;
  while (at < text.size()) {
    const size_t end = text.find('\n', at);
    if (end == std::string::npos) break;
    ++number;
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty()) continue;
    lines.push_back(spec::parse_json_string(line, path + ":" + std::to_string(number)));
  }
  return lines;
}

double number_or_missing(const JsonValue& line, const std::string& key) {
  const JsonValue* v = line.find(key);
  return v != nullptr && v->is_number() ? v->as_double() : kMissing;
}

std::string kind_of(const JsonValue& line) {
  const JsonValue* k = line.find("kind");
  return k != nullptr && k->is_string() ? k->as_string() : "";
}

// Epoch lines, then the log lines after the last epoch line (the epoch in progress).
std::vector<const JsonValue*> curve_points(const std::vector<JsonValue>& lines) {
  std::vector<const JsonValue*> out;
  size_t after_last_epoch = 0;
  for (size_t i = 0; i < lines.size(); ++i)
    if (kind_of(lines[i]) == "epoch") {
      out.push_back(&lines[i]);
      after_last_epoch = i + 1;
    }
  for (size_t i = after_last_epoch; i < lines.size(); ++i)
    if (kind_of(lines[i]) == "log") out.push_back(&lines[i]);
  return out;
}

// `key` may name a member of an object member: "nats_bench.cifar10".
double value_at(const JsonValue& line, const std::string& key) {
  const size_t dot = key.find('.');
  if (dot == std::string::npos) return number_or_missing(line, key);
  const JsonValue* inner = line.find(key.substr(0, dot));
  return inner != nullptr && inner->is_object() ? value_at(*inner, key.substr(dot + 1)) : kMissing;
}

viz::Series series(const std::vector<const JsonValue*>& points, const std::string& key,
                   const std::string& name, const std::string& colour, double scale = 1) {
  viz::Series s{name, colour, {}, {}};
  for (const JsonValue* p : points) {
    s.x.push_back(number_or_missing(*p, "step"));
    s.y.push_back(value_at(*p, key) * scale);
  }
  return s;
}

bool has_any(const viz::Series& s) {
  return std::any_of(s.y.begin(), s.y.end(), [](double v) { return std::isfinite(v); });
}

// ISTA-NAS: the (edge, op) entries in the supports of all nodes of the epoch line's
// sparse_codes (one count per cell type, not per cell instance); missing without them.
double supported_entries(const JsonValue& line) {
  const JsonValue* codes = line.find("sparse_codes");
  if (codes == nullptr || !codes->is_object()) return kMissing;
  double count = 0;
  for (const auto& [node, fields] : codes->members()) {
    const JsonValue* support = fields.is_object() ? fields.find("support") : nullptr;
    if (support != nullptr && support->is_array()) count += double(support->size());
  }
  return count;
}

// The sparse algorithms' active candidates per step, from what their epoch lines carry:
// SparseNAS' `sparsenas.candidates_per_step` (epoch means of the candidates each pass ran)
// and ISTA-NAS' supports. Empty for a run whose lines carry neither (DARTS, or NASP, whose
// records keep no count: its weight step trains one op on each edge it keeps).
std::string active_candidates_svg(const std::vector<const JsonValue*>& epochs) {
  const std::string per = "sparsenas.candidates_per_step.";
  std::vector<viz::Series> counts = {
      series(epochs, per + "weight_step", "weight step", "#1f77b4"),
      series(epochs, per + "arch_recorded", "arch. pass, recorded", "#d62728"),
      series(epochs, per + "arch_forward_only", "arch. pass, forward only", "#ff7f0e"),
      series(epochs, per + "total", "all candidates", "#7f7f7f")};
  viz::Series supports{"ISTA-NAS supports", "#17becf", {}, {}};
  for (const JsonValue* e : epochs) {
    supports.x.push_back(number_or_missing(*e, "step"));
    supports.y.push_back(supported_entries(*e));
  }
  counts.push_back(supports);
  counts.erase(std::remove_if(counts.begin(), counts.end(),
                              [](const viz::Series& s) { return !has_any(s); }),
               counts.end());
  if (counts.empty()) return "";
  return viz::line_chart_svg(has_any(supports) ? "active candidates (supported edge-op entries "
                                                 "per cell type)"
                                               : "active candidates per step (epoch mean)",
                             "step", counts);
}

std::string curves_html(const std::vector<JsonValue>& lines) {
  const std::vector<const JsonValue*> points = curve_points(lines);
  std::ostringstream out;
  out << "<h2>Curves</h2>\n<p class=\"note\">Epoch means at each epoch's last step; after the "
         "last epoch, the running means of the epoch in progress.</p>\n<div class=\"row\">\n";
  std::vector<viz::Series> loss = {series(points, "train_loss", "train", "#1f77b4"),
                                   series(points, "val_loss", "validation", "#d62728")};
  std::vector<viz::Series> acc = {series(points, "train_acc", "train", "#1f77b4", 100),
                                  series(points, "val_acc", "validation", "#d62728", 100)};
  for (auto* list : {&loss, &acc})
    list->erase(std::remove_if(list->begin(), list->end(),
                               [](const viz::Series& s) { return !has_any(s); }),
                list->end());
  out << viz::line_chart_svg("loss (cross-entropy)", "step", loss)
      << viz::line_chart_svg("accuracy (%)", "step", acc)
      << viz::line_chart_svg("learning rate", "step", {series(points, "lr", "weights", "#2ca02c")});
  // Step time at the finest grain written: log lines when there are any.
  std::vector<const JsonValue*> timed;
  for (const JsonValue& l : lines)
    if (kind_of(l) == "log") timed.push_back(&l);
  if (timed.empty()) timed = points;
  out << viz::line_chart_svg("seconds per step", "step",
                             {series(timed, "seconds_per_step", "mean", "#9467bd")});
  // A search's derived cell read against NATS-Bench, and its skip-connection ratio.
  std::vector<const JsonValue*> epochs;
  for (const JsonValue* p : points)
    if (kind_of(*p) == "epoch") epochs.push_back(p);
  const viz::Series c10 = series(epochs, "nats_bench.cifar10", "CIFAR-10", "#1f77b4"),
                    c100 = series(epochs, "nats_bench.cifar100", "CIFAR-100", "#ff7f0e"),
                    imagenet =
                        series(epochs, "nats_bench.imagenet16_120", "ImageNet16-120", "#2ca02c"),
                    skip = series(epochs, "skip_ratio.ratio", "derived cell", "#8c564b");
  if (has_any(c10))
    out << viz::line_chart_svg("NATS-Bench test accuracy of the derived cell (%)", "step",
                               {c10, c100, imagenet});
  if (has_any(skip)) out << viz::line_chart_svg("skip-connection ratio", "step", {skip});
  out << active_candidates_svg(epochs) << "</div>\n";
  for (const JsonValue& l : lines)
    if (kind_of(l) == "test")
      out << "<p>test: loss " << viz::xml_escaped(spec::dump(*l.find("test_loss"))) << ", accuracy "
          << (l.find("test_acc") ? viz::xml_escaped(spec::dump(*l.find("test_acc"))) : "?")
          << "</p>\n";
  return out.str();
}

std::vector<std::string> strings(const JsonValue* array) {
  std::vector<std::string> out;
  if (array == nullptr || !array->is_array()) return out;
  for (const JsonValue& v : array->items()) out.push_back(v.is_string() ? v.as_string() : "?");
  return out;
}

std::vector<std::vector<double>> matrix(const JsonValue* array) {
  std::vector<std::vector<double>> out;
  if (array == nullptr || !array->is_array()) return out;
  for (const JsonValue& row : array->items()) {
    std::vector<double> r;
    if (row.is_array())
      for (const JsonValue& v : row.items()) r.push_back(v.is_number() ? v.as_double() : kMissing);
    out.push_back(r);
  }
  return out;
}

// Per group, small multiples of its weights at evenly spaced epochs (the last one labelled).
std::string heatmaps_html(const std::vector<JsonValue>& lines) {
  std::vector<const JsonValue*> epochs;
  for (const JsonValue& l : lines)
    if (kind_of(l) == "epoch" && l.find("arch_weights") != nullptr) epochs.push_back(&l);
  if (epochs.empty()) return "";
  std::vector<const JsonValue*> shown;
  if (epochs.size() <= kMostHeatmaps) {
    shown = epochs;
  } else {
    for (size_t i = 0; i < kMostHeatmaps; ++i)
      shown.push_back(epochs[i * (epochs.size() - 1) / (kMostHeatmaps - 1)]);
  }
  std::ostringstream out;
  out << "<h2>Architecture weights</h2>\n<p class=\"note\">Each group's coefficients as its "
         "algorithm ranks them (metrics.jsonl <code>arch_weights</code>): one row per edge, one "
         "column per candidate, white at the group's smallest value over the run and dark blue "
         "at its largest; hover a cell for its value.</p>\n";
  const JsonValue& last_groups = *epochs.back()->find("arch_weights");
  for (const auto& [group, last] : last_groups.members()) {
    double low = std::numeric_limits<double>::infinity(), high = -low;
    for (const JsonValue* e : shown) {
      const JsonValue* g = e->find("arch_weights")->find(group);
      if (g == nullptr) continue;
      for (const std::vector<double>& row : matrix(g->find("values")))
        for (double v : row)
          if (std::isfinite(v)) {
            low = std::min(low, v);
            high = std::max(high, v);
          }
    }
    if (!(low <= high)) low = 0, high = 1;
    out << "<h3>" << xml_escaped(group) << "</h3>\n<p class=\"note\">range " << low << " to "
        << high << "</p>\n<div class=\"row\">\n";
    for (const JsonValue* e : shown) {
      const JsonValue* g = e->find("arch_weights")->find(group);
      if (g == nullptr) continue;
      const bool labelled = e == shown.back();
      out << viz::heatmap_svg("epoch " + spec::dump(*e->find("epoch")), strings(g->find("rows")),
                              strings(g->find("columns")), matrix(g->find("values")), low, high,
                              labelled);
    }
    out << "</div>\n";
  }
  return out.str();
}

// The cells' drawing as inline svg, or DOT text when the build has no graphviz.
std::string drawing_html(const spec::Space& space, const std::string& label) {
  std::vector<viz::CellDrawing> cells;
  for (const spec::Cell& c : space.cells) cells.push_back({&c, {}, 0});
  if (cells.empty()) return "<p>(the network has no cells)</p>\n";
  const std::string dot = viz::cells_dot(cells, space.name.empty() ? "cells" : space.name);
  if (!viz::graphviz_available())
    return "<p class=\"note\">This cellgraph was built without graphviz: the drawing as DOT "
           "text (render it with <code>dot -Tsvg</code>).</p>\n<pre>" +
           xml_escaped(dot) + "</pre>\n";
  const std::string svg = viz::render_dot(dot, "svg", label);
  const size_t start = svg.find("<svg");
  return "<div class=\"drawing\">" + (start == std::string::npos ? svg : svg.substr(start)) +
         "</div>\n";
}

struct Cells {
  std::optional<spec::Space> space;
  std::string genotype;
  std::string from;  // what the cells are: "derived.json", "the checkpoint at step S"
};

Cells derived_cells(const std::string& dir, const ConfigReader& config) {
  Cells c;
  const std::string command = config.string("command");
  if (command != "search") {
    c.space = config.space();
    c.from = "the network this " + command + " run trains";
    return c;
  }
  if (fs::exists(dir + "/derived.json")) {
    c.space = spec::parse_file(dir + "/derived.json");
    c.from = "derived.json (the search's result)";
    if (fs::exists(dir + "/genotype.txt")) c.genotype = io::read_file(dir + "/genotype.txt");
    return c;
  }
  if (fs::exists(checkpoint_path(dir))) {
    spec::Space space = config.space();
    algorithms::fit_space_to_data(space, shape_from_config(config));
    const io::Checkpoint ckpt = io::load_checkpoint(checkpoint_path(dir));
    algorithms::Derived derived = algorithms::derive_from_checkpoint(space, ckpt);
    c.space = std::move(derived.space);
    c.genotype = derived.genotype;
    c.from = "derived from the latest checkpoint (step " + ckpt.meta("step") +
             "); the search has not finished";
  }
  return c;
}

std::string config_html(const ConfigReader& config) {
  std::ostringstream out;
  out << "<h2>Configuration</h2>\n<table>\n";
  for (const auto& [key, value] : config.root().members()) {
    if (value.is_object() || key == "spec") continue;  // the spec and statistics: config.json
    out << "<tr><th>" << xml_escaped(key) << "</th><td>"
        << xml_escaped(value.is_string() ? value.as_string() : spec::dump(value)) << "</td></tr>\n";
  }
  out << "</table>\n";
  return out.str();
}

const char* const kStyle = R"(body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:13px;margin:12px 0 4px}.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-end}
.note{color:#666;font-size:12px}table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ddd;padding:2px 8px;text-align:left}pre{background:#f6f6f6;padding:8px;
white-space:pre-wrap;font-size:12px}.drawing svg{max-width:100%;height:auto})";

void write_report(const std::string& dir, const std::string& out_path) {
  const ConfigReader config(dir);
  const std::vector<JsonValue> lines = read_metrics(metrics_path(dir));
  const std::string command = config.string("command");
  const Cells cells = derived_cells(dir, config);

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>cellgraph "
       << xml_escaped(command) << " " << xml_escaped(dir) << "</title>\n<style>" << kStyle
       << "</style>\n</head>\n<body>\n<h1>cellgraph " << xml_escaped(command) << " run <code>"
       << xml_escaped(dir) << "</code></h1>\n<p>";
  if (config.has("algo")) html << "algorithm <b>" << xml_escaped(config.string("algo")) << "</b>, ";
  if (config.has("spec_path")) html << "spec " << xml_escaped(config.string("spec_path")) << ", ";
  int64_t last_step = 0, last_epoch = 0;
  for (const JsonValue& l : lines) {
    if (l.find("step") != nullptr && l.find("step")->is_integer())
      last_step = std::max(last_step, l.find("step")->as_integer());
    if (kind_of(l) == "epoch") last_epoch = l.find("epoch")->as_integer();
  }
  html << lines.size() << " metrics lines, " << last_epoch << " epochs and " << last_step
       << " steps recorded.</p>\n";
  if (lines.empty()) html << "<p>No metrics yet.</p>\n";
  html << curves_html(lines) << heatmaps_html(lines);
  if (cells.space) {
    html << "<h2>Cells</h2>\n<p class=\"note\">" << xml_escaped(cells.from) << "</p>\n"
         << drawing_html(*cells.space, dir);
    if (!cells.genotype.empty())
      html << "<h3>Genotype</h3>\n<pre>" << xml_escaped(cells.genotype) << "</pre>\n";
    if (!cells.space->metadata.is_null())
      html << "<h3>What is known about the cell</h3>\n<pre>"
           << xml_escaped(spec::dump(cells.space->metadata, 2)) << "</pre>\n";
  }
  html << config_html(config) << "</body>\n</html>\n";
  io::write_file_atomic(out_path, html.str());
}

// Whether the run's checkpoint is that of its last step (the loop's own test: every epoch
// done, or --max-steps reached), read from config.json as it is now (a resume may have
// raised --epochs). No checkpoint yet: the run has not finished its first epoch.
bool run_finished(const std::string& dir) {
  if (!fs::exists(checkpoint_path(dir))) return false;
  const ConfigReader config(dir);
  const io::Checkpoint ckpt = io::load_checkpoint(checkpoint_path(dir));
  const int64_t max_steps = config.has("max_steps") ? config.integer("max_steps") : 0;
  return ckpt.meta_int("epoch") >= config.integer("epochs") ||
         (max_steps > 0 && ckpt.meta_int("step") >= max_steps);
}

// Waits `interval` seconds; false (after saying so) when Ctrl-C came meanwhile.
bool sleep_unless_interrupted(double interval) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
  while (std::chrono::steady_clock::now() < until) {
    if (interrupted()) {
      std::cerr << "stopped watching\n";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// --watch: the report again every `interval` seconds until the run has finished (one last
// report after that), or until Ctrl-C. A search writes derived.json just after its last
// checkpoint, so the watch waits one more interval for it before the last report.
int watch_report(const std::string& dir, const std::string& out_path, double interval) {
  install_interrupt_handler();
  std::cerr << "watching " << dir << " (every " << interval << " s; Ctrl-C stops)\n";
  bool finished_before = false;
  for (int64_t round = 1;; ++round) {
    // The checkpoint is read before the metrics, so a report made after it saw the last
    // step has every line of that step.
    bool finished = false;
    bool derived_missing = false;
    try {
      finished = run_finished(dir);
      derived_missing =
          ConfigReader(dir).string("command") == "search" && !fs::exists(dir + "/derived.json");
    } catch (const Error&) {
      // A checkpoint being replaced or a config.json being rewritten: next round.
      finished = false;
    }
    const bool last = finished && (!derived_missing || finished_before);
    if (round == 1) {
      write_report(dir, out_path);  // a run that cannot be read at all is the user's error
    } else {
      try {
        write_report(dir, out_path);
      } catch (const Error& e) {
        // Files replaced by another program between two reads: the page stays as it was.
        std::cerr << "report " << round << " skipped: " << e.what() << "\n";
        finished_before = false;
        if (!sleep_unless_interrupted(interval)) return 0;
        continue;
      }
    }
    std::cerr << "report " << round << " written to " << out_path << "\n";
    if (last) {
      std::cerr << "the run has finished\n";
      return 0;
    }
    finished_before = finished;
    if (!sleep_unless_interrupted(interval)) return 0;
  }
}

int run_report(const Args& args) {
  const std::string& dir = args.positional(0);
  const std::string out_path = args.get("out", dir + "/report.html");
  const double interval = args.get_double("interval", 5, 0.01, 86400);
  if (args.has("interval") && !args.has("watch"))
    throw Error("report: --interval is the period of --watch; add --watch");
  if (args.has("watch")) {
    std::cout << out_path << std::endl;  // first: a watcher's caller learns where to look
    return watch_report(dir, out_path, interval);
  }
  write_report(dir, out_path);
  std::cerr << "wrote " << out_path << "\n";
  std::cout << out_path << "\n";
  return 0;
}

}  // namespace

const Command& report_command() {
  static const Command kCommand{
      .name = "report",
      .summary = "write a self-contained HTML report of a run (curves, weights, cells)",
      .positionals = {"RUN_DIR"},
      .flags = {{"out", "FILE", "where to write the page", "RUN_DIR/report.html"},
                {"watch", "", "rewrite the page while the run goes on, until it finishes", ""},
                {"interval", "S", "--watch: seconds between two reports", "5"}},
      .details =
          "One HTML file with no script and no external resource: loss, accuracy, learning "
          "rate and step time over the steps; for a search, per-epoch heatmaps of each "
          "architecture group's weights and the derived cells drawn (from derived.json, or "
          "from the latest checkpoint while the search runs); the genotype; the run's "
          "configuration. Missing or non-finite values are gaps. Prints the file's path. "
          "--watch rewrites it every --interval seconds until the run's checkpoint is its "
          "last step's (then once more), or until Ctrl-C.",
      .run = run_report};
  return kCommand;
}

}  // namespace cellgraph::tools
