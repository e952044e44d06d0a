// add_n, weighted_sum and flatten, the ops the IR adds to join branches. Hand loops:
// oneDNN's sum primitive takes constant scales only, and these coefficients are tensors
// that receive gradients.
#include <vector>

#include "engine/backends/cpu/kernels.h"
#include "engine/error.h"

namespace cellgraph::cpu {

namespace {
void add_n_forward(const ForwardCall& call) {
  float* y = call.outputs[0].data();
  const int64_t n = call.outputs[0].numel();
  std::vector<const float*> xs;
  for (const Tensor& t : call.inputs) xs.push_back(t.data());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (const float* x : xs) acc += x[i];
    y[i] = acc;
  }
}

void add_n_backward(const BackwardCall& call) {
  const Tensor& dy = call.grad_outputs[0];
  for (const Tensor& dx : call.grad_inputs)
    if (dx.defined()) dx.copy_from(dy);
}

// The coefficient of input i: coef[row, columns[i]].
std::vector<float> coefficients_of(const WeightedSumAttrs& a, const Tensor& coef) {
  const std::vector<float> all = coef.to_vector();
  std::vector<float> c;
  for (int32_t col : a.columns) c.push_back(all[size_t(a.row * coef.dim(1) + col)]);
  return c;
}

void weighted_sum_forward(const ForwardCall& call) {
  const auto& a = std::get<WeightedSumAttrs>(call.attrs);
  const size_t k = call.inputs.size() - 1;
  const std::vector<float> c = coefficients_of(a, call.inputs[k]);
  float* y = call.outputs[0].data();
  const int64_t n = call.outputs[0].numel();
  std::vector<const float*> xs;
  for (size_t i = 0; i < k; ++i) xs.push_back(call.inputs[i].data());
#pragma omp parallel for schedule(static)
  for (int64_t e = 0; e < n; ++e) {
    float acc = 0.0f;
    for (size_t i = 0; i < k; ++i) acc += c[i] * xs[i][e];
    y[e] = acc;
  }
}

void weighted_sum_backward(const BackwardCall& call) {
  const auto& a = std::get<WeightedSumAttrs>(call.attrs);
  const size_t k = call.inputs.size() - 1;
  const Tensor& coef = call.inputs[k];
  const std::vector<float> c = coefficients_of(a, coef);
  const float* dy = call.grad_outputs[0].data();
  const int64_t n = call.grad_outputs[0].numel();
  for (size_t i = 0; i < k; ++i) {
    const Tensor& dx = call.grad_inputs[i];
    if (!dx.defined()) continue;
    float* d = dx.data();
    const float ci = c[i];
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < n; ++e) d[e] = ci * dy[e];
  }
  const Tensor& dcoef = call.grad_inputs[k];
  if (!dcoef.defined()) return;
  dcoef.fill(0.0f);
  float* dc = dcoef.data();
  for (size_t i = 0; i < k; ++i) {
    const float* x = call.inputs[i].data();
    double dot = 0.0;
#pragma omp parallel for reduction(+ : dot) schedule(static)
    for (int64_t e = 0; e < n; ++e) dot += double(dy[e]) * double(x[e]);
    dc[a.row * coef.dim(1) + a.columns[i]] += static_cast<float>(dot);
  }
}

// flatten: same contiguous data, new shape; a copy keeps the output independent.
void flatten_forward(const ForwardCall& call) {
  call.outputs[0].copy_from(call.inputs[0].contiguous().reshape(call.outputs[0].shape()));
}
void flatten_backward(const BackwardCall& call) {
  call.grad_inputs[0].copy_from(call.grad_outputs[0].reshape(call.input_shapes[0]));
}
}  // namespace

void add_sum_kernels(KernelTable& table) {
  set(table, OpKind::add_n, add_n_forward, add_n_backward);
  set(table, OpKind::weighted_sum, weighted_sum_forward, weighted_sum_backward);
  set(table, OpKind::flatten, flatten_forward, flatten_backward);
}

}  // namespace cellgraph::cpu
