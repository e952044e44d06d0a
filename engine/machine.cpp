#include "engine/machine.h"

#include <cstdio>
#include <cstring>
#include <thread>

namespace cellgraph {

int core_count() {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores > 0 ? int(cores) : 1;
}

int64_t physical_memory_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  long long kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "MemTotal: %lld kB", &kib) == 1) break;
  std::fclose(f);
  return int64_t(kib) * 1024;
}

int thread_cap() { return 4 * core_count(); }

}  // namespace cellgraph
