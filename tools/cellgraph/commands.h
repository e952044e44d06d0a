// The runner's subcommands, one file each. Each returns its Command table (name, flags,
// help, entry point); main.cpp dispatches and catches cellgraph::Error once.
#pragma once

#include "tools/cellgraph/cli.h"

namespace cellgraph::tools {

const Command& validate_command();
const Command& info_command();
const Command& search_command();
const Command& derive_command();
const Command& train_command();
const Command& eval_command();
const Command& bench_command();

// Applies --threads (0 or absent: every core / $CELLGRAPH_THREADS).
void apply_threads(const Args& args);
// The --threads flag, shared by the commands that compute.
Flag threads_flag();

}  // namespace cellgraph::tools
