#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_batch_norm_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
