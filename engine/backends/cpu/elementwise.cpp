// Element-wise kernels. The activations and add/mul run as oneDNN eltwise / binary
// primitives on the flattened tensor (element-wise ops do not care about the shape, so
// one primitive serves every shape of a given size); negate, scale, dropout and drop_path
// are plain loops because they are trivial or, for the dropouts, because the mask is our
// own hash.
#include <cstring>
#include <vector>

#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/kernels.h"
#include "engine/tensor/random.h"

namespace cellgraph::cpu {

namespace {
// Flat 1-D descriptor: element-wise primitives are cached per element count.
dnnl::memory::desc flat_desc(int64_t n) {
  return dnnl::memory::desc({n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a);
}

dnnl::memory flat(const Tensor& t) { return wrap(t, flat_desc(t.numel())); }

void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.data() == src.data()) return;
  dst.copy_from(src);
}

// ---- activations: relu, tanh, sigmoid ---------------------------------------------------

// The *_use_dst_for_bwd algorithms let backward read y (which the schema keeps) rather
// than x (which it does not).
dnnl::algorithm activation_algorithm(OpKind kind) {
  switch (kind) {
    case OpKind::relu:
      return dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    case OpKind::tanh:
      return dnnl::algorithm::eltwise_tanh_use_dst_for_bwd;
    case OpKind::sigmoid:
      return dnnl::algorithm::eltwise_logistic_use_dst_for_bwd;
    default:
      break;
  }
  CG_ASSERT(false, "no eltwise algorithm for ", op_name(kind));
  return dnnl::algorithm::undef;
}

struct EltwiseForward {
  dnnl::eltwise_forward::primitive_desc pd;
  dnnl::eltwise_forward prim;
};

struct EltwiseBackward {
  dnnl::eltwise_backward prim;
};

// Backward primitives need the forward primitive descriptor as a hint.
EltwiseForward& eltwise_forward_entry(OpKind kind, int64_t n) {
  return cached<EltwiseForward>(cache_key("eltwise_fwd|", op_name(kind), "|", n), [&] {
    const dnnl::eltwise_forward::desc desc(dnnl::prop_kind::forward_training,
                                           activation_algorithm(kind), flat_desc(n));
    auto pd = CG_DNNL(dnnl::eltwise_forward::primitive_desc(desc, dnnl_engine()));
    return EltwiseForward{pd, dnnl::eltwise_forward(pd)};
  });
}

void activation_forward(const ForwardCall& call) {
  const Tensor x = call.inputs[0].contiguous();
  const Tensor& y = call.outputs[0];
  const int64_t n = x.numel();
  if (n == 0) return;
  auto& entry = eltwise_forward_entry(call.kind, n);
  CG_DNNL(entry.prim.execute(dnnl_stream(), {{DNNL_ARG_SRC, flat(x)}, {DNNL_ARG_DST, flat(y)}}));
  dnnl_stream().wait();
}

void activation_backward(const BackwardCall& call) {
  const Tensor& dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  // relu may have kept its input instead of its output (ops/elementwise.cpp): x > 0 and
  // y > 0 are the same mask, so either serves as the "dst" of relu's backward.
  const bool kept_output = !call.outputs.empty() && call.outputs[0].defined();
  CG_ASSERT(kept_output || call.kind == OpKind::relu, op_name(call.kind),
            " backward without its output");
  const Tensor y = (kept_output ? call.outputs[0] : call.inputs[0]).contiguous();
  const Tensor dy = call.grad_outputs[0].contiguous();
  const int64_t n = y.numel();
  if (n == 0) return;
  auto& entry = cached<EltwiseBackward>(cache_key("eltwise_bwd|", op_name(call.kind), "|", n), [&] {
    const dnnl::eltwise_backward::desc desc(activation_algorithm(call.kind), flat_desc(n),
                                            flat_desc(n));
    auto pd = CG_DNNL(dnnl::eltwise_backward::primitive_desc(
        desc, dnnl_engine(), eltwise_forward_entry(call.kind, n).pd));
    return EltwiseBackward{dnnl::eltwise_backward(pd)};
  });
  CG_DNNL(entry.prim.execute(
      dnnl_stream(),
      {{DNNL_ARG_DST, flat(y)}, {DNNL_ARG_DIFF_DST, flat(dy)}, {DNNL_ARG_DIFF_SRC, flat(dx)}}));
  dnnl_stream().wait();
}

// ---- add, mul ---------------------------------------------------------------------------

struct Binary {
  dnnl::binary prim;
};

// dst = a (op) b. oneDNN's binary allows dst to be the same buffer as src0, which is how
// autodiff accumulates gradients in place (dst += src through the add kernel).
void binary(dnnl::algorithm algorithm, const Tensor& a, const Tensor& b, const Tensor& dst) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  auto& entry = cached<Binary>(cache_key("binary|", static_cast<int>(algorithm), "|", n), [&] {
    const dnnl::binary::desc desc(algorithm, flat_desc(n), flat_desc(n), flat_desc(n));
    return Binary{dnnl::binary(CG_DNNL(dnnl::binary::primitive_desc(desc, dnnl_engine())))};
  });
  CG_DNNL(entry.prim.execute(
      dnnl_stream(),
      {{DNNL_ARG_SRC_0, flat(a)}, {DNNL_ARG_SRC_1, flat(b)}, {DNNL_ARG_DST, flat(dst)}}));
  dnnl_stream().wait();
}

void add_forward(const ForwardCall& call) {
  Tensor a = call.inputs[0].contiguous();
  Tensor b = call.inputs[1].contiguous();
  const Tensor& y = call.outputs[0];
  // In-place support is for src0 only; add commutes, so put an aliased operand first.
  if (b.data() == y.data()) std::swap(a, b);
  binary(dnnl::algorithm::binary_add, a, b, y);
}

// Each input's gradient is dy: the autodiff hands dy itself to the inputs it can
// (kernel.h, passes_grad_through) and leaves only the others defined for a copy.
void add_backward(const BackwardCall& call) {
  for (size_t i = 0; i < 2; ++i)
    if (call.grad_inputs[i].defined()) copy_into(call.grad_inputs[i], call.grad_outputs[0]);
}

void mul_forward(const ForwardCall& call) {
  Tensor a = call.inputs[0].contiguous();
  Tensor b = call.inputs[1].contiguous();
  const Tensor& y = call.outputs[0];
  if (b.data() == y.data()) std::swap(a, b);
  binary(dnnl::algorithm::binary_mul, a, b, y);
}

void mul_backward(const BackwardCall& call) {
  const Tensor dy = call.grad_outputs[0].contiguous();
  // da = dy * b, db = dy * a.
  if (call.grad_inputs[0].defined())
    binary(dnnl::algorithm::binary_mul, dy, call.inputs[1].contiguous(), call.grad_inputs[0]);
  if (call.grad_inputs[1].defined())
    binary(dnnl::algorithm::binary_mul, dy, call.inputs[0].contiguous(), call.grad_inputs[1]);
}

// ---- negate, scale ----------------------------------------------------------------------

void multiply_by(const Tensor& src, float factor, const Tensor& dst) {
  const float* s = src.data();
  float* d = dst.data();
  const int64_t n = dst.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) d[i] = factor * s[i];
}

void negate_forward(const ForwardCall& call) {
  multiply_by(call.inputs[0].contiguous(), -1.0f, call.outputs[0]);
}

void negate_backward(const BackwardCall& call) {
  if (call.grad_inputs[0].defined())
    multiply_by(call.grad_outputs[0].contiguous(), -1.0f, call.grad_inputs[0]);
}

void scale_forward(const ForwardCall& call) {
  multiply_by(call.inputs[0].contiguous(), call.inputs[1].item(), call.outputs[0]);
}

// dx = s dy; ds = sum(dy * x). ds is how an architecture weight's gradient is formed from
// a whole feature map, so it is summed in double to keep large maps from losing digits.
void scale_backward(const BackwardCall& call) {
  const Tensor dy = call.grad_outputs[0].contiguous();
  if (call.grad_inputs[0].defined()) multiply_by(dy, call.inputs[1].item(), call.grad_inputs[0]);
  if (call.grad_inputs[1].defined()) {
    const Tensor x = call.inputs[0].contiguous();
    const float* xs = x.data();
    const float* g = dy.data();
    const int64_t n = x.numel();
    double total = 0.0;
#pragma omp parallel for reduction(+ : total)
    for (int64_t i = 0; i < n; ++i) total += double(g[i]) * double(xs[i]);
    call.grad_inputs[1].data()[0] = static_cast<float>(total);
  }
}

// ---- dropout ----------------------------------------------------------------------------

// Element i is kept iff hash_uniform(seed, i) >= p and then scaled by 1 / (1 - p) (with
// `rows`: row r of dim 0 iff hash_uniform(seed, r) >= p). The mask is a pure function of
// (seed, i), so backward recomputes it instead of saving it.
void apply_dropout(const DropoutAttrs& a, const Tensor& src, const Tensor& dst) {
  if (!a.training || a.p == 0.0f) {
    copy_into(dst, src);
    return;
  }
  const float keep_scale = 1.0f / (1.0f - a.p);
  const float* s = src.data();
  float* d = dst.data();
  const int64_t n = dst.numel();
  if (a.rows) {  // one draw per row of dim 0 (embedding dropout)
    const int64_t rows = dst.shape().rank() > 0 ? dst.shape()[0] : 1;
    const int64_t inner = rows > 0 ? n / rows : 0;
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      const float f = hash_uniform(a.seed, static_cast<uint64_t>(r)) >= a.p ? keep_scale : 0.0f;
      for (int64_t i = r * inner; i < (r + 1) * inner; ++i) d[i] = s[i] * f;
    }
    return;
  }
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i)
    d[i] = hash_uniform(a.seed, static_cast<uint64_t>(i)) >= a.p ? s[i] * keep_scale : 0.0f;
}

void dropout_forward(const ForwardCall& call) {
  apply_dropout(std::get<DropoutAttrs>(call.attrs), call.inputs[0].contiguous(), call.outputs[0]);
}

void dropout_backward(const BackwardCall& call) {
  if (call.grad_inputs[0].defined())
    apply_dropout(std::get<DropoutAttrs>(call.attrs), call.grad_outputs[0].contiguous(),
                  call.grad_inputs[0]);
}

// ---- drop_path --------------------------------------------------------------------------

// Sample n (a slice of numel / N elements) is kept iff hash_uniform(seed, n) >= p, then
// scaled by 1 / (1 - p); as for dropout, backward recomputes the mask from (seed, n).
void apply_drop_path(const DropPathAttrs& a, const Tensor& src, const Tensor& dst) {
  if (!a.training || a.p == 0.0f) {
    copy_into(dst, src);
    return;
  }
  const float keep_scale = 1.0f / (1.0f - a.p);
  const int64_t batch = dst.shape()[0];
  const int64_t inner = batch > 0 ? dst.numel() / batch : 0;
  std::vector<float> factor(static_cast<size_t>(batch));
  for (int64_t n = 0; n < batch; ++n)
    factor[size_t(n)] = hash_uniform(a.seed, static_cast<uint64_t>(n)) >= a.p ? keep_scale : 0.0f;
  const float* s = src.data();
  float* d = dst.data();
  const int64_t total = dst.numel();
#pragma omp parallel for
  for (int64_t i = 0; i < total; ++i) d[i] = s[i] * factor[size_t(i / inner)];
}

void drop_path_forward(const ForwardCall& call) {
  apply_drop_path(std::get<DropPathAttrs>(call.attrs), call.inputs[0].contiguous(),
                  call.outputs[0]);
}

void drop_path_backward(const BackwardCall& call) {
  if (call.grad_inputs[0].defined())
    apply_drop_path(std::get<DropPathAttrs>(call.attrs), call.grad_outputs[0].contiguous(),
                    call.grad_inputs[0]);
}
}  // namespace

void add_elementwise_kernels(KernelTable& table) {
  set(table, OpKind::relu, activation_forward, activation_backward);
  set(table, OpKind::tanh, activation_forward, activation_backward);
  set(table, OpKind::sigmoid, activation_forward, activation_backward);
  set(table, OpKind::negate, negate_forward, negate_backward);
  set(table, OpKind::add,
      Kernel{.forward = add_forward, .backward = add_backward, .passes_grad_through = true});
  set(table, OpKind::mul, mul_forward, mul_backward);
  set(table, OpKind::scale, scale_forward, scale_backward);
  set(table, OpKind::dropout, dropout_forward, dropout_backward);
  set(table, OpKind::drop_path, drop_path_forward, drop_path_backward);
}

}  // namespace cellgraph::cpu
