// CUDA plumbing shared by the CUDA backend and its kernels: the stream all work runs on,
// the library handles, launch helpers, and the CG_CUDA / CG_CUDNN / CG_CUBLAS checks that
// turn a failing call into a cellgraph::Error quoting the statement and the error string.
// Only files in engine/backends/cuda/ include this (and with it the CUDA headers).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>

#include "engine/backends/cuda/cublas_library.h"
#include "engine/error.h"

namespace cellgraph::cuda {

// All CUDA work runs in order on one stream: the legacy default stream (null). The
// caching allocator hands a freed block to the next request without waiting for the GPU;
// that is safe only because every kernel and copy is ordered on this one stream.
inline cudaStream_t stream() { return nullptr; }

// The CUDA backend's library handles, created on first use and bound to stream().
// Throw Error when no CUDA device is available.
cudnnHandle_t cudnn_handle();
cublasHandle_t cublas_handle();

// dst[0, count) = value, enqueued on stream() (device memory).
void fill_async(float* dst, int64_t count, float value);

// Blocks for a 1-D grid-stride launch over count elements (at least 1, capped so that a
// huge count never exceeds the grid limit; the kernel loops over the rest).
inline unsigned int blocks_for(int64_t count, int threads_per_block) {
  constexpr int64_t kMaxBlocks = 65535LL * 64;
  const int64_t blocks = (count + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

namespace detail {
// A failed call leaves the runtime's "last error" set; clear it (where the error is not
// sticky) so that a later cudaGetLastError() after a launch does not report it again.
inline void check_cuda(cudaError_t status, const char* statement, const char* file, int line) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  throw ::cellgraph::error("CUDA call `", statement, "` failed: ", cudaGetErrorName(status), " (",
                           cudaGetErrorString(status), ") at ", file, ":", line);
}

inline void check_cudnn(cudnnStatus_t status, const char* statement, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  throw ::cellgraph::error("cuDNN call `", statement, "` failed: ", cudnnGetErrorString(status),
                           " (status ", static_cast<int>(status), ") at ", file, ":", line);
}

inline void check_cublas(cublasStatus_t status, const char* statement, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw ::cellgraph::error("cuBLAS call `", statement,
                           "` failed: ", cublas_library().status_name(status), " (",
                           cublas_library().status_string(status), ") at ", file, ":", line);
}
}  // namespace detail

}  // namespace cellgraph::cuda

// Each evaluates a CUDA runtime / cuDNN / cuBLAS call and throws cellgraph::Error on failure.
// After a kernel launch: CG_CUDA(cudaGetLastError()). cuBLAS is called through
// cublas_library() (cublas_library.h), e.g. CG_CUBLAS(cublas_library().create(&handle)).
#define CG_CUDA(...) \
  ::cellgraph::cuda::detail::check_cuda((__VA_ARGS__), #__VA_ARGS__, __FILE__, __LINE__)
#define CG_CUDNN(...) \
  ::cellgraph::cuda::detail::check_cudnn((__VA_ARGS__), #__VA_ARGS__, __FILE__, __LINE__)
#define CG_CUBLAS(...) \
  ::cellgraph::cuda::detail::check_cublas((__VA_ARGS__), #__VA_ARGS__, __FILE__, __LINE__)
