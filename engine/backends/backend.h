// A backend: a device's memory, a kernel table indexed by OpKind, and the vector
// operations of vector_ops.h. The CPU backend is always built; the CUDA backend only with
// CELLGRAPH_CUDA and only usable with a device.
#pragma once

#include <array>
#include <memory>
#include <string_view>

#include "engine/backends/kernel.h"
#include "engine/backends/vector_ops.h"
#include "engine/tensor/allocator.h"
#include "engine/tensor/device.h"

namespace cellgraph {

class Backend {
 public:
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual Device device() const = 0;
  std::string_view name() const { return device_name(device()); }

  bool supports(OpKind kind) const;
  // Throws Error naming the backend and op when this backend has no forward kernel.
  const Kernel& kernel(OpKind kind) const;

  CachingAllocator& allocator() { return *allocator_; }

  virtual void fill(float* dst, int64_t count, float value) = 0;
  // Copies count floats; one side may be the host. count may be 0, and either pointer is
  // then allowed to be null (an empty std::vector's data()).
  virtual void copy_between(float* dst, Device dst_device, const float* src, Device src_device,
                            size_t count) = 0;
  virtual void synchronize() {}

  // The vector operations, called through vec:: (vector_ops.h), which documents them and
  // checks the arguments: every defined tensor is on this device, and in-place targets are
  // contiguous. Each default throws "the <backend> backend has no kernel for vector
  // operation '<name>'"; a backend overrides the ones it implements.
  virtual void sgd_step(const Tensor& w, const Tensor& grad, const Tensor& buffer,
                        const SgdStep& step);
  virtual void adam_step(const Tensor& w, const Tensor& grad, const Tensor& m, const Tensor& v,
                         const AdamStep& step);
  virtual void sgd_lookahead(const Tensor& w, const Tensor& grad, const Tensor& buffer, float lr,
                             float momentum, float weight_decay);
  virtual double sum_squares(const Tensor& x);
  virtual double sum_squares_sequential(const Tensor& x, double start);
  virtual bool all_finite(const Tensor& x);
  virtual void scale(const Tensor& x, float s);
  virtual void axpy(float a, const Tensor& x, const Tensor& y);
  virtual void subtract_difference_quotient(const Tensor& y, float a, const Tensor& u,
                                            const Tensor& v, float c);
  virtual void clamp(const Tensor& x, float lo, float hi);

 protected:
  explicit Backend(std::unique_ptr<RawAllocator> raw);
  void set_kernel(OpKind kind, Kernel kernel);
  // The error a missing vector operation throws.
  [[noreturn]] void no_vector_kernel(const char* operation) const;

 private:
  std::array<Kernel, kOpCount> kernels_{};
  std::unique_ptr<CachingAllocator> allocator_;
};

// The backend for a device. Throws Error when that backend was not built or has no device.
Backend& backend_for(Device device);
bool backend_available(Device device);

// Kernel executions per op since the last reset (forward and backward counted apart).
// Lets tests prove that inactive candidates were not computed.
struct KernelCounts {
  std::array<int64_t, kOpCount> forward{};
  std::array<int64_t, kOpCount> backward{};
  std::array<double, kOpCount> forward_seconds{};  // wall time inside the kernels
  std::array<double, kOpCount> backward_seconds{};
  // Forwards run again in a backward to rebuild a value no node kept (recompute_output).
  std::array<int64_t, kOpCount> recomputed{};
  std::array<double, kOpCount> recomputed_seconds{};
};
KernelCounts& kernel_counts();
void reset_kernel_counts();

}  // namespace cellgraph
