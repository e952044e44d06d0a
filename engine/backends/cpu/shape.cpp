#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_shape_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
