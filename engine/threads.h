// Thread count for the CPU backend (oneDNN and our OpenMP loops share one pool).
// Default: every core, or $CELLGRAPH_THREADS when set.
#pragma once

namespace cellgraph {

void set_num_threads(int threads);  // <= 0 restores the default
int num_threads();

}  // namespace cellgraph
