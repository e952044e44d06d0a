#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_conv_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
