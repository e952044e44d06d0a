// The CPU backend: 64-byte aligned host memory and the oneDNN / hand-written kernels.
#include "engine/backends/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>

#include "engine/backends/cpu/kernels.h"
#include "engine/error.h"

namespace cellgraph {

namespace {
class HostAllocator final : public RawAllocator {
 public:
  void* allocate(size_t bytes) override { return std::aligned_alloc(64, (bytes + 63) / 64 * 64); }
  void deallocate(void* ptr) override { std::free(ptr); }
};
}  // namespace

namespace cpu {

CpuBackend::CpuBackend() : Backend(std::make_unique<HostAllocator>()) {
  KernelTable table{};
  add_conv_kernels(table);
  add_batch_norm_kernels(table);
  add_pool_kernels(table);
  add_elementwise_kernels(table);
  add_recurrent_kernels(table);
  add_matrix_kernels(table);
  add_shape_ops_kernels(table);
  add_softmax_kernels(table);
  add_sums_kernels(table);
  for (int k = 0; k < kOpCount; ++k) set_kernel(static_cast<OpKind>(k), table[size_t(k)]);
}

void CpuBackend::fill(float* dst, int64_t count, float value) {
  if (value == 0.0f) {
    std::memset(dst, 0, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  for (int64_t i = 0; i < count; ++i) dst[i] = value;
}

void CpuBackend::copy_between(float* dst, Device dst_device, const float* src, Device src_device,
                              size_t count) {
  CG_ASSERT(dst_device == Device::cpu && src_device == Device::cpu,
            "the CPU backend copies host memory only");
  // A zero-element tensor's host vector may have no buffer at all: memcpy from a null
  // pointer is undefined even for 0 bytes.
  if (count == 0) return;
  std::memcpy(dst, src, count * sizeof(float));
}

}  // namespace cpu

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

}  // namespace cellgraph
