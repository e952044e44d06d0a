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

std::string cpu_model() {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (f == nullptr) return "unknown CPU";
  char line[512];
  std::string model = "unknown CPU";
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "model name", 10) != 0) continue;
    const char* colon = std::strchr(line, ':');
    if (colon == nullptr) continue;
    model = colon + 1;
    const size_t first = model.find_first_not_of(" \t");
    const size_t last = model.find_last_not_of(" \t\n");
    model = first == std::string::npos ? "unknown CPU" : model.substr(first, last - first + 1);
    break;
  }
  std::fclose(f);
  return model;
}

}  // namespace cellgraph
