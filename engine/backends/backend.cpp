#include "engine/backends/backend.h"

#include <ctime>

#include "engine/error.h"

namespace cellgraph {

std::unique_ptr<Backend> make_cpu_backend();
#ifdef CELLGRAPH_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend();  // null when no CUDA device is present
#endif

Backend::Backend(std::unique_ptr<RawAllocator> raw)
    : allocator_(std::make_unique<CachingAllocator>(std::move(raw))) {}

void Backend::set_kernel(OpKind kind, Kernel kernel) {
  kernels_[static_cast<size_t>(kind)] = kernel;
}

bool Backend::supports(OpKind kind) const {
  return kernels_[static_cast<size_t>(kind)].forward != nullptr;
}

const Kernel& Backend::kernel(OpKind kind) const {
  const Kernel& k = kernels_[static_cast<size_t>(kind)];
  if (k.forward == nullptr)
    throw error("the ", name(), " backend has no kernel for op '", op_name(kind), "'");
  return k;
}

void Backend::no_vector_kernel(const char* operation) const {
  throw error("the ", name(), " backend has no kernel for vector operation '", operation, "'");
}

// A backend without a vector operation: the named error (see backend.h).
void Backend::sgd_step(const Tensor&, const Tensor&, const Tensor&, const SgdStep&) {
  no_vector_kernel("sgd_step");
}
void Backend::adam_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const AdamStep&) {
  no_vector_kernel("adam_step");
}
void Backend::sgd_lookahead(const Tensor&, const Tensor&, const Tensor&, float, float, float) {
  no_vector_kernel("sgd_lookahead");
}
double Backend::sum_squares(const Tensor&) { no_vector_kernel("sum_squares"); }
double Backend::sum_squares_sequential(const Tensor&, double) {
  no_vector_kernel("sum_squares_sequential");
}
bool Backend::all_finite(const Tensor&) { no_vector_kernel("all_finite"); }
void Backend::scale(const Tensor&, float) { no_vector_kernel("scale"); }
void Backend::axpy(float, const Tensor&, const Tensor&) { no_vector_kernel("axpy"); }
void Backend::subtract_difference_quotient(const Tensor&, float, const Tensor&, const Tensor&,
                                           float) {
  no_vector_kernel("subtract_difference_quotient");
}
void Backend::clamp(const Tensor&, float, float) { no_vector_kernel("clamp"); }
double Backend::dot(const Tensor&, const Tensor&) { no_vector_kernel("dot"); }
double Backend::batch_norm_dot(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&, float, float, const Tensor&) {
  no_vector_kernel("batch_norm_dot");
}

namespace {
struct Registry {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
#ifdef CELLGRAPH_HAVE_CUDA
  std::unique_ptr<Backend> cuda = make_cuda_backend();
#else
  std::unique_ptr<Backend> cuda;
#endif
};

Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

bool backend_available(Device device) {
  return device == Device::cpu || registry().cuda != nullptr;
}

Backend& backend_for(Device device) {
  if (device == Device::cpu) return *registry().cpu;
  if (!registry().cuda) {
#ifdef CELLGRAPH_HAVE_CUDA
    throw error("device 'cuda' requested but no CUDA device is available");
#else
    throw error(
        "device 'cuda' requested but cellgraph was built without CUDA (CELLGRAPH_CUDA=OFF)");
#endif
  }
  return *registry().cuda;
}

KernelCounts& kernel_counts() {
  static KernelCounts counts;
  return counts;
}

namespace {
std::map<std::string, ShapeKernelTime>& shape_times() {
  static std::map<std::string, ShapeKernelTime> times;
  return times;
}
}  // namespace

void reset_kernel_counts() {
  kernel_counts() = KernelCounts{};
  shape_times().clear();
}

namespace {
bool g_kernel_split = false;
bool g_kernel_shapes = false;
thread_local KernelPart g_part = KernelPart::network;

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

void add_time(KernelPartTime& part, const KernelStart& start,
              std::chrono::steady_clock::time_point now) {
  ++part.calls;
  part.wall_seconds += std::chrono::duration<double>(now - start.wall).count();
  part.cpu_seconds += process_cpu_seconds() - start.cpu;
}
}  // namespace

void set_kernel_split(bool on) { g_kernel_split = on; }
bool kernel_split() { return g_kernel_split; }
void set_kernel_shapes(bool on) { g_kernel_shapes = on; }
bool kernel_shapes() { return g_kernel_shapes; }
const std::map<std::string, ShapeKernelTime>& kernel_shape_times() { return shape_times(); }

KernelPartScope::KernelPartScope(KernelPart part) : previous_(g_part) { g_part = part; }
KernelPartScope::~KernelPartScope() { g_part = previous_; }
KernelPart current_kernel_part() { return g_part; }

KernelStart kernel_start() {
  KernelStart s{.wall = std::chrono::steady_clock::now()};
  if (g_kernel_split) s.cpu = process_cpu_seconds();
  return s;
}

namespace {
// The per-op counts and, with the split on, the part's times; returns the kernel's seconds.
double count_kernel(KernelPass pass, OpKind kind, const KernelStart& start) {
  const auto now = std::chrono::steady_clock::now();
  KernelCounts& k = kernel_counts();
  const size_t op = static_cast<size_t>(kind);
  const bool candidate = g_part == KernelPart::candidate;
  const auto part = static_cast<size_t>(g_part);
  const double seconds = std::chrono::duration<double>(now - start.wall).count();
  switch (pass) {
    case KernelPass::forward:
      ++k.forward[op];
      k.forward_seconds[op] += seconds;
      if (candidate) {
        ++k.candidate_forward[op];
        k.candidate_forward_seconds[op] += seconds;
      }
      if (g_kernel_split) add_time(k.forward_parts[part], start, now);
      break;
    case KernelPass::backward:
      ++k.backward[op];
      k.backward_seconds[op] += seconds;
      if (candidate) {
        ++k.candidate_backward[op];
        k.candidate_backward_seconds[op] += seconds;
      }
      if (g_kernel_split) add_time(k.backward_parts[part], start, now);
      break;
    case KernelPass::recompute:
      ++k.recomputed[op];
      k.recomputed_seconds[op] += seconds;
      if (g_kernel_split) add_time(k.recompute, start, now);
      break;
    case KernelPass::accumulate:
      if (g_kernel_split) add_time(k.accumulate, start, now);
      break;
    case KernelPass::vector_op:
      if (g_kernel_split) add_time(k.vector_ops, start, now);
      break;
  }
  return seconds;
}
}  // namespace

void record_kernel(KernelPass pass, OpKind kind, const KernelStart& start) {
  count_kernel(pass, kind, start);
}

namespace {
const char* pass_name(KernelPass pass) {
  switch (pass) {
    case KernelPass::forward:
      return "fwd";
    case KernelPass::backward:
      return "bwd";
    case KernelPass::recompute:
      return "recompute";
    case KernelPass::accumulate:
      return "accumulate";
    case KernelPass::vector_op:
      return "vector";
  }
  return "?";
}

std::string shape_key(KernelPass pass, OpKind kind, const Attrs& attrs,
                      std::span<const Shape> input_shapes) {
  std::string key = std::string(op_name(kind)) + " " + pass_name(pass);
  for (const Shape& shape : input_shapes) {
    if (shape.rank() == 0) continue;  // an absent optional input
    key += ' ';
    for (int d = 0; d < shape.rank(); ++d) {
      if (d > 0) key += 'x';
      key += std::to_string(shape[d]);
    }
  }
  if (const auto* c = std::get_if<ConvAttrs>(&attrs)) {
    key += " s" + std::to_string(c->stride) + " d" + std::to_string(c->dilation);
    if (c->groups != 1) key += " g" + std::to_string(c->groups);
    if (c->relu_input) key += " relu";
  } else if (const auto* p = std::get_if<PoolAttrs>(&attrs)) {
    key += " k" + std::to_string(p->kernel) + " s" + std::to_string(p->stride);
  }
  return key;
}
}  // namespace

void record_kernel(KernelPass pass, OpKind kind, const KernelStart& start, const Attrs& attrs,
                   std::span<const Shape> input_shapes) {
  const double seconds = count_kernel(pass, kind, start);
  if (!g_kernel_shapes) return;
  ShapeKernelTime& t = shape_times()[shape_key(pass, kind, attrs, input_shapes)];
  ++t.calls;
  t.seconds += seconds;
}

}  // namespace cellgraph
