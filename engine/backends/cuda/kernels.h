// The CUDA kernel families, named as in engine/backends/cpu/ (conv.cu beside conv.cpp,
// ...). Each family file will define its forward/backward kernels and one
// add_*_kernels() that enters them in the table; cuda_backend.cpp calls those. None exist
// yet, so every op is a named error on this backend ("the cuda backend has no kernel for
// op 'conv2d'") and the op tests skip it.
#pragma once

#include <array>
#include <cstddef>

#include "engine/backends/kernel.h"

namespace cellgraph::cuda {

using KernelTable = std::array<Kernel, kOpCount>;

inline void set(KernelTable& table, OpKind kind, ForwardKernel forward, BackwardKernel backward) {
  table[static_cast<size_t>(kind)] = Kernel{forward, backward};
}

}  // namespace cellgraph::cuda
