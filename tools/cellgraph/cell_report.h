// What the runner reports about a fixed network's cells: its NATS-Bench entry (when its cell
// is a NATS-Bench topology cell) and its skip-connection ratio, as text and as JSON, and
// their record in derived.json's "metadata". `info`, `derive` and the end of `search` (via
// write_derived) share these, so the three print and write the same fields.
#pragma once

#include <string>

#include "algorithms/nats_bench.h"
#include "spec/json_value.h"
#include "spec/space.h"

namespace cellgraph::tools {

// "NATS-Bench #6111 |...|: test accuracy CIFAR-10 94.37%, CIFAR-100 73.22%, ImageNet16-120
// 46.71%"
std::string nats_text(const algorithms::NatsEntry& entry);
// "skip-connection ratio 0.167 (1 of 6 edges; tss 1/6)"
std::string skip_ratio_text(const algorithms::SkipRatio& ratio);

// Sets metadata.nats_bench (a NATS cell) and metadata.skip_ratio (convolutional cells) of a
// fixed network, keeping any other metadata it has (the JSON is algorithms/cell_facts.h').
void record_cell_facts(spec::Space& fixed);

// The two text lines (NATS-Bench entry, skip ratio) for a fixed network; "" when neither
// applies. Each line ends in '\n'.
std::string cell_facts_text(const spec::Space& fixed);

}  // namespace cellgraph::tools
