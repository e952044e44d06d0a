// add_n, weighted_sum and flatten, the ops the IR adds to join branches. Hand loops:
// oneDNN's sum primitive takes constant scales only, and these coefficients are tensors
// that receive gradients.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "engine/backends/cpu/kernels.h"
#include "engine/backends/cpu/vector_loops.h"
#include "engine/error.h"

namespace cellgraph::cpu {

namespace {
// Blocks small enough that an output block (256 KiB) stays in L2 while every input is
// added, and long enough that each input is read in long runs: a node's sum reads up to 35
// inputs, and the prefetchers restart on every run. 35 inputs of 1M floats, 1 thread,
// median of 9: blocks of 8192 floats 10.8-12.2 ms, 32768 9.9-10.1, 131072 9.1-9.4. In a
// DARTS step (bench/profile_step, 1 thread, two rounds alternated with blocks of 8192) the
// sums' forward took 0.301 / 0.271 -> 0.278 / 0.233 s and their backward 0.202 / 0.182 ->
// 0.176 / 0.172 s.
constexpr int64_t kBlock = 65536;

// The block for n elements: kBlock, or less where that would leave a thread without a
// block (a [16, 64, 8, 8] sum is one block of 65536), but not below 4096 floats.
int64_t block_for(int64_t n) {
  const int64_t threads = omp_get_max_threads();
  const int64_t share = (n + threads - 1) / threads;
  return std::clamp<int64_t>((share + 15) / 16 * 16, 4096, kBlock);
}

void add_n_forward(const ForwardCall& call) {
  float* y = call.outputs[0].data();
  const int64_t n = call.outputs[0].numel();
  std::vector<const float*> xs;
  for (const Tensor& t : call.inputs) xs.push_back(t.data());
  const int64_t block = block_for(n), blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * block, len = std::min(n, lo + block) - lo;
    scale_into(1.0f, xs[0] + lo, y + lo, len);
    for (size_t i = 1; i < xs.size(); ++i) axpy(1.0f, xs[i] + lo, y + lo, len);
  }
}

// As add's: dy itself where the autodiff could pass it through, a copy elsewhere.
void add_n_backward(const BackwardCall& call) {
  const Tensor& dy = call.grad_outputs[0];
  for (const Tensor& dx : call.grad_inputs)
    if (dx.defined()) dx.copy_from(dy);
}

// The coefficient of input i: coef[row_of(i), columns[i]].
std::vector<float> coefficients_of(const WeightedSumAttrs& a, const Tensor& coef) {
  const std::vector<float> all = coef.to_vector();
  std::vector<float> c;
  for (size_t i = 0; i < a.columns.size(); ++i)
    c.push_back(all[size_t(a.row_of(i) * coef.dim(1) + a.columns[i])]);
  return c;
}

// Terms whose coefficient is 0 are left out: NASP's architecture step weighs eight
// outputs with a one-hot row and reads one of them. As in the ISTA-NAS authors' mixed op,
// an inf or NaN in a left-out output does not reach the sum.
void weighted_sum_forward(const ForwardCall& call) {
  const auto& a = std::get<WeightedSumAttrs>(call.attrs);
  const size_t k = call.inputs.size() - 1;
  const std::vector<float> all = coefficients_of(a, call.inputs[k]);
  std::vector<float> c;
  std::vector<const float*> xs;
  for (size_t i = 0; i < k; ++i) {
    if (all[i] == 0.0f) continue;
    c.push_back(all[i]);
    xs.push_back(call.inputs[i].data());
  }
  float* y = call.outputs[0].data();
  const int64_t n = call.outputs[0].numel();
  if (xs.empty()) {
    call.outputs[0].fill(0.0f);
    return;
  }
  const int64_t block = block_for(n), blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * block, len = std::min(n, lo + block) - lo;
    scale_into(c[0], xs[0] + lo, y + lo, len);
    for (size_t i = 1; i < xs.size(); ++i) axpy(c[i], xs[i] + lo, y + lo, len);
  }
}

// One pass over dy in blocks: per block every input's gradient (c_i * dy) and every
// coefficient's <dy, x_i>. The dot products are summed per thread, then in thread order:
// deterministic for a given thread count. An input whose producer reads scaled gradients
// (a candidate's closing batch norm) gets c_i alone (kernel.h, scale_only): in a DARTS step
// the sums' backward wrote a copy of dy per candidate, half of its 0.4 s.
void weighted_sum_backward(const BackwardCall& call) {
  const auto& a = std::get<WeightedSumAttrs>(call.attrs);
  const size_t k = call.inputs.size() - 1;
  const Tensor& coef = call.inputs[k];
  const std::vector<float> c = coefficients_of(a, coef);
  const float* dy = call.grad_outputs[0].data();
  const int64_t n = call.grad_outputs[0].numel();
  std::vector<float*> dxs(k, nullptr);
  std::vector<const float*> xs(k, nullptr);
  const Tensor& dcoef = call.grad_inputs[k];
  const bool dots = dcoef.defined();  // only then are the inputs kept (ops/sums.cpp)
  for (size_t i = 0; i < k; ++i) {
    if (call.hands_out_scale(i)) call.grad_input_scales[i] = c[i];  // c_i * dy, not written
    if (call.grad_inputs[i].defined()) dxs[i] = call.grad_inputs[i].data();
    if (dots) xs[i] = call.inputs[i].data();
  }
  const int64_t block = block_for(n), blocks = (n + block - 1) / block;
  const int threads = omp_get_max_threads();
  std::vector<double> partial(size_t(threads) * k, 0.0);
#pragma omp parallel
  {
    double* mine = partial.data() + size_t(omp_get_thread_num()) * k;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t lo = b * block, len = std::min(n, lo + block) - lo;
      for (size_t i = 0; i < k; ++i) {
        if (dxs[i] != nullptr && call.accumulates_into(i))
          axpy(c[i], dy + lo, dxs[i] + lo, len);
        else if (dxs[i] != nullptr)
          scale_into(c[i], dy + lo, dxs[i] + lo, len);
        if (dots) mine[i] += dot_double(dy + lo, xs[i] + lo, len);
      }
    }
  }
  if (!dots) return;
  if (!call.accumulates_into(k)) dcoef.fill(0.0f);  // else: adds to the other sums' share
  float* dc = dcoef.data();
  for (size_t i = 0; i < k; ++i) {
    double sum = 0.0;
    for (int t = 0; t < threads; ++t) sum += partial[size_t(t) * k + i];
    dc[a.row_of(i) * coef.dim(1) + a.columns[i]] += static_cast<float>(sum);
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

void add_sums_kernels(KernelTable& table) {
  set(table, OpKind::add_n,
      Kernel{.forward = add_n_forward, .backward = add_n_backward, .passes_grad_through = true});
  set(table, OpKind::weighted_sum,
      Kernel{.forward = weighted_sum_forward,
             .backward = weighted_sum_backward,
             .accumulates = true,
             .hands_out_scaled = true});
  set(table, OpKind::flatten, flatten_forward, flatten_backward);
}

}  // namespace cellgraph::cpu
