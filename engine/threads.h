// Thread count for the CPU backend (oneDNN and our OpenMP loops share one pool).
// Default: every core, or $CELLGRAPH_THREADS when set.
#pragma once

namespace cellgraph {

// <= 0 restores the default; more than thread_cap() (engine/machine.h) is capped to it.
void set_num_threads(int threads);
int num_threads();

}  // namespace cellgraph
