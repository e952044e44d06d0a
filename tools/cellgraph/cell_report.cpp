#include "tools/cellgraph/cell_report.h"

#include <cstdio>

#include "algorithms/cell_facts.h"

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

}  // namespace

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
  JsonValue facts = JsonValue::object();
  algorithms::add_cell_facts(fixed, facts);
  if (facts.size() == 0) return;
  if (!fixed.metadata.is_object()) fixed.metadata = JsonValue::object();
  for (const auto& [key, value] : facts.members()) fixed.metadata.set(key, value);
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
