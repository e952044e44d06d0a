// The CPU kernel families. Each family file is named as the op family's file in ops/
// (conv.cpp, batch_norm.cpp, ...), defines the family's forward/backward kernels and one
// add_<family>_kernels() that enters them in the table; cpu_backend.cpp calls those.
#pragma once

#include <array>

#include "engine/backends/kernel.h"

namespace cellgraph::cpu {

using KernelTable = std::array<Kernel, kOpCount>;

// `accumulates`: the backward honours BackwardCall::accumulate (kernel.h).
inline void set(KernelTable& table, OpKind kind, ForwardKernel forward, BackwardKernel backward,
                bool accumulates = false) {
  table[static_cast<size_t>(kind)] = Kernel{forward, backward, accumulates};
}
// A kernel with the gradient flags of kernel.h's Kernel beyond `accumulates`.
inline void set(KernelTable& table, OpKind kind, Kernel kernel) {
  table[static_cast<size_t>(kind)] = kernel;
}

void add_conv_kernels(KernelTable& table);         // conv2d
void add_batch_norm_kernels(KernelTable& table);   // batch_norm
void add_pool_kernels(KernelTable& table);         // max_pool, avg_pool, global_avg_pool
void add_elementwise_kernels(KernelTable& table);  // relu, tanh, sigmoid, negate, add, mul,
                                                   // scale, dropout, drop_path
void add_matrix_kernels(KernelTable& table);       // linear, matmul, embedding
void add_shape_ops_kernels(KernelTable& table);    // concat, split, slice, zero, reshape, sum
void add_softmax_kernels(KernelTable& table);      // softmax, log_softmax, cross_entropy
void add_sums_kernels(KernelTable& table);         // add_n, weighted_sum, flatten
void add_recurrent_kernels(KernelTable& table);    // highway

// The vector operation batch_norm_dot (vector_ops.h), next to the batch norm forward whose
// statistics and values it shares (batch_norm.cpp).
double batch_norm_forward_dot(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, float momentum,
                              float eps, const Tensor& g);

}  // namespace cellgraph::cpu
