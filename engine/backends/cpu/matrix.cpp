// Matrix kernels: linear, matmul and their gradients all run as one oneDNN matmul
// primitive that reads either operand transposed through its memory descriptor (a
// row-major [R,C] buffer is a [C,R] matrix with format tag `ba`), so no transposed copy
// is ever made. Embedding is a row gather / scatter-add loop.
#include <cmath>
#include <cstring>

#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

namespace {

dnnl::memory::desc matrix_desc(int64_t rows, int64_t cols, bool transposed) {
  return dnnl::memory::desc(
      {rows, cols}, dnnl::memory::data_type::f32,
      transposed ? dnnl::memory::format_tag::ba : dnnl::memory::format_tag::ab);
}

struct Matmul {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, bias;
};

// One operand of a product: a contiguous row-major buffer read as itself or transposed.
struct Operand {
  Tensor t;  // a view: copying it is cheap
  bool transposed = false;
};

// c[M,N] = op(a)[M,K] op(b)[K,N] (+ bias[N] on every row when given).
void gemm(const Operand& a, const Operand& b, const Tensor& c, const Tensor* bias = nullptr) {
  const int64_t m = c.dim(0), n = c.dim(1);
  const int64_t k = a.transposed ? a.t.dim(0) : a.t.dim(1);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: oneDNN rejects zero-sized operands
    c.fill(0.0f);
    if (bias != nullptr)
      for (int64_t i = 0; i < m; ++i)
        std::memcpy(c.data() + i * n, bias->data(), sizeof(float) * size_t(n));
    return;
  }
  auto& entry = cached<Matmul>(
      cache_key("matmul|", m, ",", n, ",", k, "|", a.transposed, b.transposed, bias != nullptr),
      [&] {
        Matmul made;
        made.a = matrix_desc(m, k, a.transposed);
        made.b = matrix_desc(k, n, b.transposed);
        made.c = matrix_desc(m, n, false);
        if (bias != nullptr) {
          made.bias = matrix_desc(1, n, false);
          made.prim = dnnl::matmul(CG_DNNL(dnnl::matmul::primitive_desc(
              dnnl::matmul::desc(made.a, made.b, made.bias, made.c), dnnl_engine())));
        } else {
          made.prim = dnnl::matmul(CG_DNNL(dnnl::matmul::primitive_desc(
              dnnl::matmul::desc(made.a, made.b, made.c), dnnl_engine())));
        }
        return made;
      });
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, wrap(a.t, entry.a)},
                                             {DNNL_ARG_WEIGHTS, wrap(b.t, entry.b)},
                                             {DNNL_ARG_DST, wrap(c, entry.c)}};
  if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, wrap(*bias, entry.bias));
  CG_DNNL(entry.prim.execute(dnnl_stream(), args));
  dnnl_stream().wait();
}

// db[M] = sum over rows of dy[N,M], in double like every reduction to a parameter gradient.
void column_sums(const Tensor& dy, const Tensor& db) {
  const int64_t rows = dy.dim(0), cols = dy.dim(1);
  const float* g = dy.data();
  float* out = db.data();
#pragma omp parallel for
  for (int64_t j = 0; j < cols; ++j) {
    double total = 0.0;
    for (int64_t i = 0; i < rows; ++i) total += double(g[i * cols + j]);
    out[j] = static_cast<float>(total);
  }
}

// ---- linear: y[N,M] = x[N,K] w[M,K]^T + b[M] --------------------------------------------
// An input of rank > 2 ([N, T, K]) is the matrix of its rows: a contiguous tensor viewed as
// [N*T, K], no copy.

Tensor as_rows(const Tensor& t) {
  const int last = t.shape().rank() - 1;
  const int64_t cols = t.shape()[last];
  return t.shape().rank() == 2 ? t : t.reshape({cols == 0 ? 0 : t.numel() / cols, cols});
}

void linear_forward(const ForwardCall& call) {
  const Tensor x = as_rows(call.inputs[0].contiguous());
  const Tensor w = call.inputs[1].contiguous();
  const bool has_bias = call.inputs.size() > 2 && call.inputs[2].defined();
  const Tensor b = has_bias ? call.inputs[2].contiguous() : Tensor();
  gemm({x}, {w, true}, as_rows(call.outputs[0]), has_bias ? &b : nullptr);
}

void linear_backward(const BackwardCall& call) {
  const Tensor dy = as_rows(call.grad_outputs[0].contiguous());
  if (call.grad_inputs[0].defined())  // dx[N,K] = dy[N,M] w[M,K]
    gemm({dy}, {call.inputs[1].contiguous()}, as_rows(call.grad_inputs[0]));
  if (call.grad_inputs[1].defined())  // dw[M,K] = dy^T[M,N] x[N,K]
    gemm({dy, true}, {as_rows(call.inputs[0].contiguous())}, call.grad_inputs[1]);
  if (call.grad_inputs.size() > 2 && call.grad_inputs[2].defined())
    column_sums(dy, call.grad_inputs[2]);
}

// ---- matmul: y[M,N] = a[M,K] b[K,N] ------------------------------------------------------

void matmul_forward(const ForwardCall& call) {
  gemm({call.inputs[0].contiguous()}, {call.inputs[1].contiguous()}, call.outputs[0]);
}

void matmul_backward(const BackwardCall& call) {
  const Tensor dy = call.grad_outputs[0].contiguous();
  if (call.grad_inputs[0].defined())  // da[M,K] = dy[M,N] b^T[N,K]
    gemm({dy}, {call.inputs[1].contiguous(), true}, call.grad_inputs[0]);
  if (call.grad_inputs[1].defined())  // db[K,N] = a^T[K,M] dy[M,N]
    gemm({call.inputs[0].contiguous(), true}, {dy}, call.grad_inputs[1]);
}

// ---- embedding: y[n] = weight[indices[n]] ------------------------------------------------

// Indices arrive as floats (every tensor is float32); each must be an exact row number.
// Checked before any parallel loop, since an exception may not leave an OpenMP region.
std::vector<int64_t> checked_rows(const Tensor& indices, int64_t vocabulary) {
  const std::vector<float> v = indices.to_vector();
  std::vector<int64_t> rows(v.size());
  for (size_t n = 0; n < v.size(); ++n) {
    const float f = v[n];
    if (!(f >= 0.0f && f < float(vocabulary) && std::floor(f) == f))
      throw error("embedding: index ", f, " at position ", n,
                  " is not an integer row of the weight (vocabulary size V = ", vocabulary, ")");
    rows[n] = static_cast<int64_t>(f);
  }
  return rows;
}

void embedding_forward(const ForwardCall& call) {
  const Tensor w = call.inputs[0].contiguous();
  const int64_t dim = w.dim(1);
  const std::vector<int64_t> rows = checked_rows(call.inputs[1], w.dim(0));
  const float* src = w.data();
  float* dst = call.outputs[0].data();
  const auto count = static_cast<int64_t>(rows.size());
#pragma omp parallel for
  for (int64_t n = 0; n < count; ++n)
    std::memcpy(dst + n * dim, src + rows[size_t(n)] * dim, sizeof(float) * size_t(dim));
}

// A row used several times receives the sum of its gradients. Rows are scattered one
// after another (repeated indices would race); within a row the work is a vector add.
void embedding_backward(const BackwardCall& call) {
  const Tensor& dw = call.grad_inputs[0];
  if (!dw.defined()) return;
  const Tensor dy = call.grad_outputs[0].contiguous();
  const int64_t dim = dw.dim(1);
  const std::vector<int64_t> rows = checked_rows(call.inputs[1], dw.dim(0));
  dw.fill(0.0f);
  const float* g = dy.data();
  float* out = dw.data();
  for (size_t n = 0; n < rows.size(); ++n) {
    float* row = out + rows[n] * dim;
    const float* grad = g + int64_t(n) * dim;
    for (int64_t d = 0; d < dim; ++d) row[d] += grad[d];
  }
}
}  // namespace

void add_matrix_kernels(KernelTable& table) {
  set(table, OpKind::linear, linear_forward, linear_backward);
  set(table, OpKind::matmul, matmul_forward, matmul_backward);
  set(table, OpKind::embedding, embedding_forward, embedding_backward);
}

}  // namespace cellgraph::cpu
