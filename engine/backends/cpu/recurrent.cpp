// Kernels of the recurrent-cell ops: highway, y = s + g (fh - s) with g = sigmoid(c).
// One plain loop per pass: the op is three reads and a write per element, and fusing the
// sigmoid with the blend is the point of having one op (oneDNN would need an eltwise and
// two binary primitives, each a full pass over memory). Backward recomputes g from c.
#include <cmath>

#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

namespace {
inline float logistic(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void highway_forward(const ForwardCall& call) {
  const Tensor s = call.inputs[0].contiguous(), c = call.inputs[1].contiguous(),
               fh = call.inputs[2].contiguous();
  const float *ps = s.data(), *pc = c.data(), *pf = fh.data();
  float* y = call.outputs[0].data();
  const int64_t n = call.outputs[0].numel();
#pragma omp parallel for if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) y[i] = ps[i] + logistic(pc[i]) * (pf[i] - ps[i]);
}

void highway_backward(const BackwardCall& call) {
  const Tensor s = call.inputs[0].contiguous(), c = call.inputs[1].contiguous(),
               fh = call.inputs[2].contiguous(), dy = call.grad_outputs[0].contiguous();
  const float *ps = s.data(), *pc = c.data(), *pf = fh.data(), *g = dy.data();
  float* ds = call.grad_inputs[0].defined() ? call.grad_inputs[0].data() : nullptr;
  float* dc = call.grad_inputs[1].defined() ? call.grad_inputs[1].data() : nullptr;
  float* df = call.grad_inputs[2].defined() ? call.grad_inputs[2].data() : nullptr;
  const int64_t n = dy.numel();
#pragma omp parallel for if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float gate = logistic(pc[i]);
    if (ds) ds[i] = g[i] * (1.0f - gate);
    if (dc) dc[i] = g[i] * (pf[i] - ps[i]) * gate * (1.0f - gate);
    if (df) df[i] = g[i] * gate;
  }
}
}  // namespace

void add_recurrent_kernels(KernelTable& table) {
  set(table, OpKind::highway, highway_forward, highway_backward);
}

}  // namespace cellgraph::cpu
