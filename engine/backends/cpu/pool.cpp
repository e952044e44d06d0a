#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_pool_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
