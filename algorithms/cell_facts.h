// Facts about a fixed network's cells that a user compares searches by: its NATS-Bench entry
// (when its cell is a NATS-Bench topology cell: index and the benchmark's test accuracies)
// and its skip-connection ratio (the collapse indicator of RARTS' Table 4). derived.json's
// metadata, `info --json` and every epoch record of a search carry the same JSON, so a
// search's progress can be read against the benchmark without deriving by hand.
#pragma once

#include "algorithms/nats_bench.h"
#include "spec/json_value.h"
#include "spec/space.h"

namespace cellgraph::algorithms {

// {"index", "arch", "cifar10", "cifar100", "imagenet16_120"} (accuracies in percent).
spec::JsonValue nats_json(const NatsEntry& entry);
// {"ratio", "skip", "edges", "cells": {NAME: {"ratio", "skip", "edges"}}}.
spec::JsonValue skip_ratio_json(const SkipRatio& ratio);

// Sets `nats_bench` (a NATS cell) and `skip_ratio` (convolutional cells) of `object`, a JSON
// object, from the fixed network; leaves it alone when neither applies.
void add_cell_facts(const spec::Space& fixed, spec::JsonValue& object);

}  // namespace cellgraph::algorithms
