// Device-side fill for CudaBackend::fill (Tensor::full, zeros, gradient resets).
#include "engine/backends/cuda/cuda_context.h"

namespace cellgraph::cuda {

namespace {
constexpr int kThreads = 256;

__global__ void fill_kernel(float* dst, int64_t count, float value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    dst[i] = value;
}
}  // namespace

void fill_async(float* dst, int64_t count, float value) {
  if (count <= 0) return;
  if (value == 0.0f) {  // +0.0f is all-zero bytes
    CG_CUDA(cudaMemsetAsync(dst, 0, static_cast<size_t>(count) * sizeof(float), stream()));
    return;
  }
  fill_kernel<<<blocks_for(count, kThreads), kThreads, 0, stream()>>>(dst, count, value);
  CG_CUDA(cudaGetLastError());
}

}  // namespace cellgraph::cuda
