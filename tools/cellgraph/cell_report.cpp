#include "tools/cellgraph/cell_report.h"

#include <cstdio>

namespace cellgraph::tools {

using spec::JsonValue;

namespace {

std::string fixed3(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", v);
  return text;
}

std::string percent(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", v);
  return text;
}

JsonValue count_json(double ratio, int skip, int edges) {
  JsonValue out = JsonValue::object();
  out.set("ratio", ratio);
  out.set("skip", skip);
  out.set("edges", edges);
  return out;
}

}  // namespace

JsonValue nats_json(const algorithms::NatsEntry& entry) {
  JsonValue out = JsonValue::object();
  out.set("index", entry.index);
  out.set("arch", entry.arch);
  out.set("cifar10", entry.accuracy.cifar10);
  out.set("cifar100", entry.accuracy.cifar100);
  out.set("imagenet16_120", entry.accuracy.imagenet16_120);
  return out;
}

JsonValue skip_ratio_json(const algorithms::SkipRatio& ratio) {
  JsonValue out = count_json(ratio.ratio(), ratio.skip, ratio.edges);
  JsonValue cells = JsonValue::object();
  for (const algorithms::SkipCount& c : ratio.cells)
    cells.set(c.cell, count_json(c.ratio(), c.skip, c.edges));
  out.set("cells", cells);
  return out;
}

std::string nats_text(const algorithms::NatsEntry& entry) {
  return "NATS-Bench #" + std::to_string(entry.index) + " " + entry.arch +
         ": test accuracy CIFAR-10 " + percent(entry.accuracy.cifar10) + ", CIFAR-100 " +
         percent(entry.accuracy.cifar100) + ", ImageNet16-120 " +
         percent(entry.accuracy.imagenet16_120);
}

std::string skip_ratio_text(const algorithms::SkipRatio& ratio) {
  std::string cells;
  for (const algorithms::SkipCount& c : ratio.cells)
    cells += "; " + c.cell + " " + std::to_string(c.skip) + "/" + std::to_string(c.edges);
  return "skip-connection ratio " + fixed3(ratio.ratio()) + " (" + std::to_string(ratio.skip) +
         " of " + std::to_string(ratio.edges) + " edges" + cells + ")";
}

void record_cell_facts(spec::Space& fixed) {
  const std::optional<algorithms::NatsEntry> nats = algorithms::nats_lookup(fixed);
  const algorithms::SkipRatio skips = algorithms::skip_ratio(fixed);
  if (!nats && skips.edges == 0) return;
  if (!fixed.metadata.is_object()) fixed.metadata = JsonValue::object();
  if (nats) fixed.metadata.set("nats_bench", nats_json(*nats));
  if (skips.edges > 0) fixed.metadata.set("skip_ratio", skip_ratio_json(skips));
}

std::string cell_facts_text(const spec::Space& fixed) {
  std::string out;
  if (const std::optional<algorithms::NatsEntry> nats = algorithms::nats_lookup(fixed))
    out += nats_text(*nats) + "\n";
  const algorithms::SkipRatio skips = algorithms::skip_ratio(fixed);
  if (skips.edges > 0) out += skip_ratio_text(skips) + "\n";
  return out;
}

}  // namespace cellgraph::tools
