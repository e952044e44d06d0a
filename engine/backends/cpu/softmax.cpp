#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_softmax_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
