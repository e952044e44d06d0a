#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

void add_matrix_kernels(KernelTable&) {}

}  // namespace cellgraph::cpu
