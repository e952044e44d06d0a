#include "engine/threads.h"

#include <omp.h>

#include <cstdlib>
#include <thread>

namespace cellgraph {

namespace {
int default_threads() {
  if (const char* env = std::getenv("CELLGRAPH_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return cores ? static_cast<int>(cores) : 1;
}
}  // namespace

void set_num_threads(int threads) {
  omp_set_num_threads(threads > 0 ? threads : default_threads());
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace cellgraph
