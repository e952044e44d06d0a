#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_eltwise_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
