// A backend: a device's memory, a kernel table indexed by OpKind, and the vector
// operations of vector_ops.h. The CPU backend is always built; the CUDA backend only with
// CELLGRAPH_CUDA and only usable with a device.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <span>
#include <string>
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
  virtual double dot(const Tensor& x, const Tensor& y);
  virtual double batch_norm_dot(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                const Tensor& running_mean, const Tensor& running_var,
                                float momentum, float eps, const Tensor& g);

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
//
// The split (bench/profile_step --split, issue 17): the executor marks each node's kernels
// with the part of the network it belongs to (KernelPartScope below) and autodiff carries
// the mark to its backward, so the counts also say which kernels ran for candidate ops and
// which for the rest of the network (stem, preprocessing, sums, concat, head). The per-op
// candidate counts are kept always (an addition); the split's timings — wall and process
// CPU seconds per part, gradient accumulation in backward, the optimizers' vector
// operations — only while set_kernel_split(true), because reading the process CPU clock is
// a system call.
enum class KernelPart : uint8_t {
  network,    // a node of no candidate: stem, preprocessing, sums, concat, head, loss
  shared,     // a node shared by several candidates' readers (a ReLU of an edge input)
  candidate,  // a node of one candidate op (ir::Node::candidate valid)
};
inline constexpr size_t kKernelParts = 3;
struct KernelPartTime {
  int64_t calls = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;  // process CPU time: every thread of the OpenMP pool
};
struct KernelCounts {
  std::array<int64_t, kOpCount> forward{};
  std::array<int64_t, kOpCount> backward{};
  std::array<double, kOpCount> forward_seconds{};  // wall time inside the kernels
  std::array<double, kOpCount> backward_seconds{};
  // Forwards run again in a backward to rebuild a value no node kept (recompute_output).
  std::array<int64_t, kOpCount> recomputed{};
  std::array<double, kOpCount> recomputed_seconds{};
  // Of forward / backward: the executions that belonged to a candidate op's node.
  std::array<int64_t, kOpCount> candidate_forward{};
  std::array<int64_t, kOpCount> candidate_backward{};
  std::array<double, kOpCount> candidate_forward_seconds{};
  std::array<double, kOpCount> candidate_backward_seconds{};
  // With the split on: kernel time by part, indexed by KernelPart.
  std::array<KernelPartTime, kKernelParts> forward_parts{};
  std::array<KernelPartTime, kKernelParts> backward_parts{};
  KernelPartTime accumulate;  // backward summing gradients where a value fans out
  KernelPartTime vector_ops;  // vec:: (optimizer steps, norms, DARTS' finite differences)
  KernelPartTime recompute;   // forwards run again in a backward (recompute_output)
};
KernelCounts& kernel_counts();
void reset_kernel_counts();

void set_kernel_split(bool on);
bool kernel_split();

// While alive, the kernels this thread runs belong to this part of the network.
class KernelPartScope {
 public:
  explicit KernelPartScope(KernelPart part);
  ~KernelPartScope();
  KernelPartScope(const KernelPartScope&) = delete;
  KernelPartScope& operator=(const KernelPartScope&) = delete;

 private:
  KernelPart previous_;
};
KernelPart current_kernel_part();

// Timing one kernel call: start before it, record after it. With the split off a record
// costs one clock read and the per-op counters.
enum class KernelPass : uint8_t { forward, backward, recompute, accumulate, vector_op };
struct KernelStart {
  std::chrono::steady_clock::time_point wall;
  double cpu = 0;  // read only with the split on
};
KernelStart kernel_start();
void record_kernel(KernelPass pass, OpKind kind, const KernelStart& start);

// By shape (bench/profile_step --shapes): the per-op counters say which op a step is slow
// in, not which of its calls; a DARTS step runs its 1x1 convs at eight shapes, some from
// cache and some not. With set_kernel_shapes(true) each forward, backward and recompute is
// also counted under a key of its op, its pass, its input shapes and the attributes that
// change a kernel's work at equal shapes (a conv's stride, dilation, groups and folded
// ReLU; a pool's window and stride), e.g. "conv2d fwd 64x16x32x32 16x1x3x3 s1 d2 g16".
// Off by default: building and finding the key takes microseconds a kernel (an ISTA-NAS
// step's time outside kernels rose by 0.002-0.007 s at 1 thread, three paired runs).
struct ShapeKernelTime {
  int64_t calls = 0;
  double seconds = 0;  // wall time inside the kernels
};
void set_kernel_shapes(bool on);
bool kernel_shapes();
// Keys to times since the last reset_kernel_counts().
const std::map<std::string, ShapeKernelTime>& kernel_shape_times();
// record_kernel, and with kernel_shapes() on the by-shape count as well.
void record_kernel(KernelPass pass, OpKind kind, const KernelStart& start, const Attrs& attrs,
                   std::span<const Shape> input_shapes);

}  // namespace cellgraph
