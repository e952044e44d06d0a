// Facts about the machine the runner uses to refuse settings that cannot work: the core
// count (thread caps) and the physical memory (batch sizes whose activations cannot fit).
#pragma once

#include <cstdint>
#include <string>

namespace cellgraph {

// Logical cores (at least 1).
int core_count();

// Physical memory in bytes, from /proc/meminfo's MemTotal; 0 when unknown.
int64_t physical_memory_bytes();

// Most threads worth running: 4 per core. Beyond that OpenMP's barriers spin and yield
// across oversubscribed cores, and a step that takes a second at the core count takes
// minutes at thousands of threads, for no gain.
int thread_cap();

// The CPU's model name from /proc/cpuinfo ("AMD EPYC 7B13"), for measurements that depend on
// the machine (latency tables); "unknown CPU" when it is not there.
std::string cpu_model();

}  // namespace cellgraph
