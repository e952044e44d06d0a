// Pooling: max and average (padding excluded from the count) on our own loops
// (pool_loops.h), global average by hand (a per-plane mean is one pass over memory). Max
// pooling keeps the position of each window's maximum, one byte per output, for its
// backward, which then needs neither x nor a recomputation; with no backward coming it
// keeps nothing. Only max pooling over windows wider than 16 (positions past a byte) runs
// oneDNN, whose workspace plays the same part.
//
// Why not oneDNN throughout: its max pooling drops NaNs (a window holding one gives the
// largest other element), where PyTorch's and ours give NaN: a NaN upstream must not
// vanish silently (windows past 16 still run oneDNN and still drop them). Speed is a
// wash. Per call (1 thread, batch 64, 3x3 windows, the lower of two medians of 15, ms,
// oneDNN / ours): max forward 1.01 / 0.98 on 16 x 32 x 32 planes, 0.21 / 0.50 on
// 64 x 8 x 8, 0.16 / 0.36 at stride 2 on 32 x 16 x 16; average forward 0.73 / 0.50 and
// backward 1.16 / 0.81 on 16 x 32 x 32, backward 0.19 / 0.47 at stride 2 on 32 x 16 x 16.
// Over a DARTS search step (bench/profile_step --algo darts --batch 64, 1 thread, two
// alternated rounds) pooling took 0.539 / 0.527 s with oneDNN and 0.517 / 0.518 s here.
#include <string>

#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/grad_target.h"
#include "engine/backends/cpu/kernels.h"
#include "engine/backends/cpu/pool_loops.h"

namespace cellgraph::cpu {

namespace {
using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

struct PoolGeometry {
  memory::desc src, dst;
  memory::dims strides, kernel, padding_l, padding_r;
};

PoolGeometry geometry(const PoolAttrs& a, const Shape& x, const Shape& y) {
  // Symmetric padding: oneDNN only requires (in + l + r - k) / stride + 1 == out with
  // integer division, the shape our schema inferred.
  return {plain_desc(x),        plain_desc(y),          {a.stride, a.stride},
          {a.kernel, a.kernel}, {a.padding, a.padding}, {a.padding, a.padding}};
}

std::string pool_key(const char* what, algorithm alg, const PoolAttrs& a, const Shape& x) {
  return cache_key(what, '|', static_cast<int>(alg), '|', x.str(), "|k", a.kernel, "s", a.stride,
                   "p", a.padding);
}

dnnl::pooling_forward::primitive_desc forward_pd(prop_kind prop, algorithm alg,
                                                 const PoolGeometry& g) {
  const dnnl::pooling_forward::desc d(prop, alg, g.src, g.dst, g.strides, g.kernel, g.padding_l,
                                      g.padding_r);
  return dnnl::pooling_forward::primitive_desc(d, dnnl_engine());
}

struct ForwardEntry {
  dnnl::pooling_forward primitive;
  memory::desc workspace;  // zero desc when the primitive has none
};
struct BackwardEntry {
  dnnl::pooling_backward primitive;
  memory::desc workspace;
};

// Max pooling over windows wider than a byte's positions.
void dnnl_max_pool_forward(const ForwardCall& call) {
  constexpr algorithm kAlg = algorithm::pooling_max;
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  Tensor& y = call.outputs[0];
  const bool train = call.saved != nullptr;
  const prop_kind prop = train ? prop_kind::forward_training : prop_kind::forward_inference;
  const PoolGeometry g = geometry(a, x.shape(), y.shape());
  auto& entry = cached<ForwardEntry>(
      pool_key(train ? "pool_fwd_train" : "pool_fwd_infer", kAlg, a, x.shape()), [&] {
        const auto pd = CG_DNNL(forward_pd(prop, kAlg, g));
        return ForwardEntry{CG_DNNL(dnnl::pooling_forward(pd)), pd.workspace_desc()};
      });

  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(x, g.src)},
                                       {DNNL_ARG_DST, wrap(y, g.dst)}};
  if (train) {
    // The workspace is indices, not floats; a float tensor of at least its size holds it
    // and lives in the node's saved list until the backward has run.
    const int64_t floats = int64_t((entry.workspace.get_size() + 3) / 4);
    Tensor ws = Tensor::empty({floats > 0 ? floats : 1});
    args.emplace(DNNL_ARG_WORKSPACE, memory(entry.workspace, dnnl_engine(), ws.data()));
    call.saved->push_back(ws);
  }
  CG_DNNL(entry.primitive.execute(dnnl_stream(), args));
  CG_DNNL(dnnl_stream().wait());
}

void dnnl_max_pool_backward(const BackwardCall& call) {
  constexpr algorithm kAlg = algorithm::pooling_max;
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Shape& xs = call.input_shapes[0];
  const Tensor dy = call.grad_outputs[0].contiguous();
  Tensor dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  const PoolGeometry g = geometry(a, xs, dy.shape());
  auto& entry = cached<BackwardEntry>(pool_key("pool_bwd", kAlg, a, xs), [&] {
    const dnnl::pooling_backward::desc d(kAlg, g.src, g.dst, g.strides, g.kernel, g.padding_l,
                                         g.padding_r);
    // The hint is the forward the max-pool workspace came from (same desc, same choice).
    const auto hint = CG_DNNL(forward_pd(prop_kind::forward_training, kAlg, g));
    const auto pd = CG_DNNL(dnnl::pooling_backward::primitive_desc(d, dnnl_engine(), hint));
    return BackwardEntry{CG_DNNL(dnnl::pooling_backward(pd)), pd.workspace_desc()};
  });

  const GradTarget target(call, 0);
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, wrap(dy, g.dst)},
                                       {DNNL_ARG_DIFF_SRC, wrap(target.tensor(), g.src)}};
  CG_ASSERT(call.saved.size() == 1, "max_pool backward without the forward's workspace");
  args.emplace(DNNL_ARG_WORKSPACE, memory(entry.workspace, dnnl_engine(), call.saved[0].data()));
  CG_DNNL(entry.primitive.execute(dnnl_stream(), args));
  CG_DNNL(dnnl_stream().wait());
  target.finish();
}

PoolShape pool_shape(const PoolAttrs& a, const Shape& x, const Shape& y) {
  return {x[0] * x[1], x[2], x[3], y[2], y[3], a.kernel, a.stride, a.padding};
}

void max_pool_kernel(const ForwardCall& call) {
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  Tensor& y = call.outputs[0];
  const PoolShape s = pool_shape(a, x.shape(), y.shape());
  if (!max_pool_loops_fit(s)) return dnnl_max_pool_forward(call);
  uint8_t* argmax = nullptr;
  if (call.saved != nullptr) {
    // One byte per output, in a float tensor that lives in the node's saved list until the
    // backward has run.
    Tensor positions = Tensor::empty({std::max<int64_t>(1, (y.numel() + 3) / 4)});
    argmax = reinterpret_cast<uint8_t*>(positions.data());
    call.saved->push_back(positions);
  }
  max_pool_forward(s, x.data(), y.data(), argmax);
}

void max_pool_backward_kernel(const BackwardCall& call) {
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor dy = call.grad_outputs[0].contiguous();
  Tensor dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  const PoolShape s = pool_shape(a, call.input_shapes[0], dy.shape());
  if (!max_pool_loops_fit(s)) return dnnl_max_pool_backward(call);
  CG_ASSERT(call.saved.size() == 1, "max_pool backward without the forward's positions");
  max_pool_backward(s, dy.data(), reinterpret_cast<const uint8_t*>(call.saved[0].data()), dx.data(),
                    call.accumulates_into(0));
}

void avg_pool_kernel(const ForwardCall& call) {
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  Tensor& y = call.outputs[0];
  avg_pool_forward(pool_shape(a, x.shape(), y.shape()), x.data(), y.data());
}

void avg_pool_backward_kernel(const BackwardCall& call) {
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor dy = call.grad_outputs[0].contiguous();
  Tensor dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  avg_pool_backward(pool_shape(a, call.input_shapes[0], dy.shape()), dy.data(), dx.data(),
                    call.accumulates_into(0));
}

void global_avg_pool_forward(const ForwardCall& call) {
  const Tensor x = call.inputs[0].contiguous();
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t size = x.dim(2) * x.dim(3);
  const float* src = x.data();
  float* dst = call.outputs[0].data();
#pragma omp parallel for
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = src + p * size;
    double acc = 0;
    for (int64_t k = 0; k < size; ++k) acc += plane[k];
    dst[p] = float(acc / double(size));
  }
}

void global_avg_pool_backward(const BackwardCall& call) {
  Tensor dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  const Tensor dy = call.grad_outputs[0].contiguous();
  const Shape& xs = call.input_shapes[0];
  const int64_t planes = xs[0] * xs[1];
  const int64_t size = xs[2] * xs[3];
  const float* src = dy.data();
  float* dst = dx.data();
#pragma omp parallel for
  for (int64_t p = 0; p < planes; ++p) {
    const float g = src[p] / float(size);
    for (int64_t k = 0; k < size; ++k) dst[p * size + k] = g;
  }
}
}  // namespace

void add_pool_kernels(KernelTable& table) {
  set(table, OpKind::max_pool, max_pool_kernel, max_pool_backward_kernel, /*accumulates=*/true);
  set(table, OpKind::avg_pool, avg_pool_kernel, avg_pool_backward_kernel, /*accumulates=*/true);
  set(table, OpKind::global_avg_pool, global_avg_pool_forward, global_avg_pool_backward);
}

}  // namespace cellgraph::cpu
