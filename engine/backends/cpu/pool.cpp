// Pooling: max and average (padding excluded from the count) on our own loops
// (pool_loops.h; DARTS' stride-1 3x3 windows on narrow planes in pool_rows.h), global average by
// hand (a per-plane mean is one pass over memory). Max pooling keeps the position of each window's
// maximum (a byte per output, four bytes for windows wider than 16) for its backward, which then
// needs neither x nor a recomputation; with no backward coming it keeps nothing and computes the
// maxima alone.
//
// Why not oneDNN, which ran these ops before: its max pooling dropped NaNs (a window
// holding one gave the largest other element), where PyTorch's and ours give NaN: a NaN
// upstream must not vanish silently. Speed is a wash. Per call (1 thread, batch 64, 3x3
// windows, the lower of two medians of 15, ms, oneDNN / ours): max forward 1.01 / 0.98 on
// 16 x 32 x 32 planes, 0.21 / 0.50 on 64 x 8 x 8, 0.16 / 0.36 at stride 2 on 32 x 16 x 16;
// average forward 0.73 / 0.50 and backward 1.16 / 0.81 on 16 x 32 x 32, backward 0.19 /
// 0.47 at stride 2 on 32 x 16 x 16. Over a DARTS search step (bench/profile_step --algo
// darts --batch 64, 1 thread, two alternated rounds) pooling took 0.539 / 0.527 s with
// oneDNN and 0.517 / 0.518 s here.
#include <algorithm>
#include <cstdint>

#include "engine/backends/cpu/kernels.h"
#include "engine/backends/cpu/pool_loops.h"
#include "engine/error.h"

namespace cellgraph::cpu {

namespace {
PoolShape pool_shape(const PoolAttrs& a, const Shape& x, const Shape& y) {
  return {x[0] * x[1], x[2], x[3], y[2], y[3], a.kernel, a.stride, a.padding};
}

void max_pool_kernel(const ForwardCall& call) {
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  Tensor& y = call.outputs[0];
  const PoolShape s = pool_shape(a, x.shape(), y.shape());
  const bool bytes = max_pool_byte_positions(s);
  float* positions = nullptr;
  if (call.saved != nullptr) {
    // In a float tensor that lives in the node's saved list until the backward has run.
    const int64_t size = bytes ? int64_t(sizeof(uint8_t)) : int64_t(sizeof(int32_t));
    Tensor kept = Tensor::empty({std::max<int64_t>(1, (y.numel() * size + 3) / 4)});
    positions = kept.data();
    call.saved->push_back(kept);
  }
  if (bytes)
    max_pool_forward(s, x.data(), y.data(), reinterpret_cast<uint8_t*>(positions));
  else
    max_pool_forward(s, x.data(), y.data(), reinterpret_cast<int32_t*>(positions));
}

void max_pool_backward_kernel(const BackwardCall& call) {
  const auto& a = std::get<PoolAttrs>(call.attrs);
  const Tensor dy = call.grad_outputs[0].contiguous();
  const Tensor& dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  const PoolShape s = pool_shape(a, call.input_shapes[0], dy.shape());
  CG_ASSERT(call.saved.size() == 1, "max_pool backward without the forward's positions");
  const float* positions = call.saved[0].data();
  if (max_pool_byte_positions(s))
    max_pool_backward(s, dy.data(), reinterpret_cast<const uint8_t*>(positions), dx.data(),
                      call.accumulates_into(0));
  else
    max_pool_backward(s, dy.data(), reinterpret_cast<const int32_t*>(positions), dx.data(),
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
