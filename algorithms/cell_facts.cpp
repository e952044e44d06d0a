#include "algorithms/cell_facts.h"

#include <optional>

namespace cellgraph::algorithms {

using spec::JsonValue;

namespace {

JsonValue count_json(double ratio, int skip, int edges) {
  JsonValue out = JsonValue::object();
  out.set("ratio", ratio);
  out.set("skip", skip);
  out.set("edges", edges);
  return out;
}

}  // namespace

JsonValue nats_json(const NatsEntry& entry) {
  JsonValue out = JsonValue::object();
  out.set("index", entry.index);
  out.set("arch", entry.arch);
  out.set("cifar10", entry.accuracy.cifar10);
  out.set("cifar100", entry.accuracy.cifar100);
  out.set("imagenet16_120", entry.accuracy.imagenet16_120);
  return out;
}

JsonValue skip_ratio_json(const SkipRatio& ratio) {
  JsonValue out = count_json(ratio.ratio(), ratio.skip, ratio.edges);
  JsonValue cells = JsonValue::object();
  for (const SkipCount& c : ratio.cells) cells.set(c.cell, count_json(c.ratio(), c.skip, c.edges));
  out.set("cells", cells);
  return out;
}

void add_cell_facts(const spec::Space& fixed, JsonValue& object) {
  if (const std::optional<NatsEntry> nats = nats_lookup(fixed))
    object.set("nats_bench", nats_json(*nats));
  const SkipRatio skips = skip_ratio(fixed);
  if (skips.edges > 0) object.set("skip_ratio", skip_ratio_json(skips));
}

}  // namespace cellgraph::algorithms
