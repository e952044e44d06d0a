#include "engine/threads.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>

#include "engine/machine.h"

namespace cellgraph {

namespace {
int default_threads() {
  if (const char* env = std::getenv("CELLGRAPH_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return std::min(n, thread_cap());
  }
  return core_count();
}
}  // namespace

void set_num_threads(int threads) {
  omp_set_num_threads(threads > 0 ? std::min(threads, thread_cap()) : default_threads());
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace cellgraph
