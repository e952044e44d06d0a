// The CUDA kernel families. A family's kernels go in engine/backends/cuda/<family>.cu,
// named as the family's file in ops/ and its CPU kernels in engine/backends/cpu/ (conv.cu
// for ops/conv.cpp and cpu/conv.cpp), with one add_<family>_kernels(KernelTable&) declared
// here and called from cuda_backend.cpp. None exist yet, so every op is a named error on
// this backend ("the cuda backend has no kernel for op 'conv2d'"); the op harness
// (tests/support/op_harness.h) skips each op with that message until its kernels are
// registered, and from then on compares them with the CPU's.
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
