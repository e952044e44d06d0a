// The CPU backend: 64-byte aligned host memory and the oneDNN / hand-written kernels.
#include <cstdlib>
#include <cstring>

#include "engine/backends/backend.h"
#include "engine/backends/cpu/kernels.h"
#include "engine/error.h"

namespace cellgraph {

namespace {
class HostAllocator final : public RawAllocator {
 public:
  void* allocate(size_t bytes) override { return std::aligned_alloc(64, (bytes + 63) / 64 * 64); }
  void deallocate(void* ptr) override { std::free(ptr); }
};

class CpuBackend final : public Backend {
 public:
  CpuBackend() : Backend(std::make_unique<HostAllocator>()) {
    cpu::KernelTable table{};
    cpu::add_conv_kernels(table);
    cpu::add_batch_norm_kernels(table);
    cpu::add_pool_kernels(table);
    cpu::add_elementwise_kernels(table);
    cpu::add_matrix_kernels(table);
    cpu::add_shape_ops_kernels(table);
    cpu::add_softmax_kernels(table);
    cpu::add_sums_kernels(table);
    for (int k = 0; k < kOpCount; ++k) set_kernel(static_cast<OpKind>(k), table[size_t(k)]);
  }

  Device device() const override { return Device::cpu; }

  void fill(float* dst, int64_t count, float value) override {
    if (value == 0.0f) {
      std::memset(dst, 0, static_cast<size_t>(count) * sizeof(float));
      return;
    }
    for (int64_t i = 0; i < count; ++i) dst[i] = value;
  }

  void copy_between(float* dst, Device dst_device, const float* src, Device src_device,
                    size_t count) override {
    CG_ASSERT(dst_device == Device::cpu && src_device == Device::cpu,
              "the CPU backend copies host memory only");
    // A zero-element tensor's host vector may have no buffer at all: memcpy from a null
    // pointer is undefined even for 0 bytes.
    if (count == 0) return;
    std::memcpy(dst, src, count * sizeof(float));
  }
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace cellgraph
