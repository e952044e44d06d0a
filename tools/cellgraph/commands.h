// The runner's subcommands, one file each. Each returns its Command table (name, flags,
// help, entry point); main.cpp dispatches and catches cellgraph::Error once.
#pragma once

#include <string>

#include "algorithms/hyperparameters.h"
#include "engine/ir/graph.h"
#include "engine/ir/parameter_store.h"
#include "spec/space.h"
#include "tools/cellgraph/cli.h"

namespace cellgraph::tools {

const Command& validate_command();
const Command& info_command();
const Command& search_command();
const Command& derive_command();
const Command& train_command();
const Command& eval_command();
const Command& bench_command();
const Command& export_command();
const Command& infer_command();
const Command& draw_command();
const Command& report_command();
const Command& latency_command();

// Applies --threads (0 or absent: every core / $CELLGRAPH_THREADS).
void apply_threads(const Args& args);
// The --threads flag, shared by the commands that compute.
Flag threads_flag();
// --recompute relu|depthwise|none: how much forward work backward passes redo to keep less.
Flag recompute_flag();
void apply_recompute(const Args& args);
// --device cpu|cuda (default cpu): the device the command computes on. Throws Error for
// another name, and when that device's backend was not built or finds no device, before
// anything is read or written.
Device selected_device(const Args& args);
// The --device flag, shared by search, train, eval, infer and bench.
Flag device_flag();
// Every algorithm's own hyperparameter flags (search.cpp), shared by search and bench, and
// their reading into `own`, the table of --algo `algo`: a flag of another algorithm is
// refused by name, naming `command`.
std::vector<Flag> algorithm_flags();
void apply_algorithm_flags(const Args& args, const std::string& command, const std::string& algo,
                           algorithms::HyperValues& own);

// What export and infer run (export.cpp): the network of RUN_DIR_OR_SPEC (positional 0).
// A train run directory: its spec fitted to the run's data shape, with the checkpoint's
// weights. A spec: its own input and classes (or those of --data), seeded initial weights
// (--seed). A search run is refused; a search-space spec too when `fixed_only`.
struct FixedNetwork {
  spec::Space space;
  ir::Graph graph;
  ir::ParameterStore params;
  std::string weights_from;  // "RUN/checkpoint.bin (step S)" or "initial weights (seed S)"
  int64_t step = 0;          // the checkpoint's step (0: initial weights)
};
FixedNetwork load_fixed_network(const Args& args, bool fixed_only);
// The trained network of a run directory, fitted to the run's data: a train run's network
// with its checkpoint's weights, or the network of a search that trains it (the algorithm's
// trains_network(): ISTA-NAS one-stage's absorbed network). Any other
// run is an Error that tells `command` users what to give instead.
FixedNetwork load_run_network(const std::string& dir, const std::string& command);

}  // namespace cellgraph::tools
