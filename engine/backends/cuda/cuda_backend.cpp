// The CUDA backend: device memory from cudaMalloc behind the caching allocator, copies
// between host and device, and the (lazily created) cuDNN and cuBLAS handles its kernels
// use. make_cuda_backend() returns null on a machine without a usable CUDA device, so a
// CUDA build runs everywhere; only Device::cuda is then unavailable.
#include <cstring>
#include <memory>
#include <mutex>

#include "engine/backends/backend.h"
#include "engine/backends/cuda/cuda_context.h"
#include "engine/backends/cuda/kernels.h"
#include "engine/error.h"

namespace cellgraph {

namespace {

class CudaAllocator final : public RawAllocator {
 public:
  // cudaMalloc blocks are 256-byte aligned. Out of memory returns null so that the caching
  // allocator can release its free blocks and retry.
  void* allocate(size_t bytes) override {
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, bytes);
    if (status == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return nullptr;
    }
    cuda::detail::check_cuda(status, "cudaMalloc(&ptr, bytes)", __FILE__, __LINE__);
    return ptr;
  }

  // Never throws: it runs from destructors, also at exit, when the runtime may already be
  // shutting down (cudaErrorCudartUnloading); the memory goes with the process then.
  void deallocate(void* ptr) override {
    if (cudaFree(ptr) != cudaSuccess) (void)cudaGetLastError();
  }
};

cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (src == Device::cpu) return dst == Device::cpu ? cudaMemcpyHostToHost : cudaMemcpyHostToDevice;
  return dst == Device::cpu ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() : Backend(std::make_unique<CudaAllocator>()) {
    cuda::KernelTable table{};
    // The kernel families (cuda::add_conv_kernels(table), ...) register here once written.
    for (int k = 0; k < kOpCount; ++k) set_kernel(static_cast<OpKind>(k), table[size_t(k)]);
  }

  // Errors are ignored: see CudaAllocator::deallocate.
  ~CudaBackend() override {
    if (cudnn_ != nullptr) (void)cudnnDestroy(cudnn_);
    if (cublas_ != nullptr) (void)cuda::cublas_library().destroy(cublas_);
    (void)cudaGetLastError();
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::cuda; }

  void fill(float* dst, int64_t count, float value) override {
    cuda::fill_async(dst, count, value);
  }

  // Host-to-device returns once the host buffer may be reused; device-to-host returns
  // once the data has arrived; device-to-device is ordered on the stream.
  void copy_between(float* dst, Device dst_device, const float* src, Device src_device,
                    size_t count) override {
    if (count == 0) return;
    const size_t bytes = count * sizeof(float);
    if (dst_device == Device::cpu && src_device == Device::cpu) {
      std::memcpy(dst, src, bytes);
      return;
    }
    CG_CUDA(cudaMemcpy(dst, src, bytes, copy_kind(dst_device, src_device)));
  }

  void synchronize() override { CG_CUDA(cudaStreamSynchronize(cuda::stream())); }

  // cudnnCreate / cublasCreate cost a context and hundreds of milliseconds: only programs
  // that run a cuDNN / cuBLAS kernel pay for them.
  cudnnHandle_t cudnn() {
    std::call_once(cudnn_once_, [this] {
      cudnnHandle_t handle = nullptr;
      CG_CUDNN(cudnnCreate(&handle));
      const cudnnStatus_t status = cudnnSetStream(handle, cuda::stream());
      if (status != CUDNN_STATUS_SUCCESS) (void)cudnnDestroy(handle);
      CG_CUDNN(status);
      cudnn_ = handle;
    });
    return cudnn_;
  }

  cublasHandle_t cublas() {
    std::call_once(cublas_once_, [this] {
      cublasHandle_t handle = nullptr;
      const cuda::CublasLibrary& lib = cuda::cublas_library();
      CG_CUBLAS(lib.create(&handle));
      const cublasStatus_t status = lib.set_stream(handle, cuda::stream());
      if (status != CUBLAS_STATUS_SUCCESS) (void)lib.destroy(handle);
      CG_CUBLAS(status);
      cublas_ = handle;
    });
    return cublas_;
  }

 private:
  std::once_flag cudnn_once_;
  std::once_flag cublas_once_;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

CudaBackend& cuda_backend() { return static_cast<CudaBackend&>(backend_for(Device::cuda)); }

}  // namespace

namespace cuda {
cudnnHandle_t cudnn_handle() { return cuda_backend().cudnn(); }
cublasHandle_t cublas_handle() { return cuda_backend().cublas(); }
}  // namespace cuda

// Null when the runtime finds no device (no driver, no GPU, CUDA_VISIBLE_DEVICES empty).
// Only counts devices: no CUDA context is created until the first allocation, so
// CPU-only programs on a GPU machine do not pay for one.
std::unique_ptr<Backend> make_cuda_backend() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0) {
    (void)cudaGetLastError();
    return nullptr;
  }
  try {
    return std::make_unique<CudaBackend>();
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace cellgraph
