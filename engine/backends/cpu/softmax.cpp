// Softmax and log-softmax over dim 1 of [N,C] as oneDNN primitives (their backward reads
// the output, which the schema keeps), and the fused cross-entropy loss as a loop: it
// needs both log p (for the loss) and p (saved for backward), and label smoothing, which
// no single oneDNN primitive gives.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

namespace {
// ---- softmax, log_softmax ---------------------------------------------------------------

// The two primitive families have the same shape of API; this picks one by type.
template <typename Fwd, typename Bwd>
struct SoftmaxFamily {
  struct Forward {
    typename Fwd::primitive_desc pd;
    Fwd prim;
  };
  struct Backward {
    Bwd prim;
  };

  static Forward& forward_entry(const char* name, const Shape& shape) {
    return cached<Forward>(cache_key(name, "_fwd|", shape.str()), [&] {
      const typename Fwd::desc desc(dnnl::prop_kind::forward_training, plain_desc(shape), 1);
      auto pd = CG_DNNL(typename Fwd::primitive_desc(desc, dnnl_engine()));
      return Forward{pd, Fwd(pd)};
    });
  }

  static void forward(const char* name, const Tensor& x, const Tensor& y) {
    if (y.numel() == 0) return;
    auto& entry = forward_entry(name, y.shape());
    CG_DNNL(entry.prim.execute(dnnl_stream(), {{DNNL_ARG_SRC, wrap(x)}, {DNNL_ARG_DST, wrap(y)}}));
    dnnl_stream().wait();
  }

  static void backward(const char* name, const Tensor& y, const Tensor& dy, const Tensor& dx) {
    if (dx.numel() == 0) return;
    auto& entry = cached<Backward>(cache_key(name, "_bwd|", y.shape().str()), [&] {
      const dnnl::memory::desc md = plain_desc(y.shape());
      const typename Bwd::desc desc(md, md, 1);
      auto pd = CG_DNNL(
          typename Bwd::primitive_desc(desc, dnnl_engine(), forward_entry(name, y.shape()).pd));
      return Backward{Bwd(pd)};
    });
    CG_DNNL(entry.prim.execute(
        dnnl_stream(),
        {{DNNL_ARG_DST, wrap(y)}, {DNNL_ARG_DIFF_DST, wrap(dy)}, {DNNL_ARG_DIFF_SRC, wrap(dx)}}));
    dnnl_stream().wait();
  }
};

using Softmax = SoftmaxFamily<dnnl::softmax_forward, dnnl::softmax_backward>;
using LogSoftmax = SoftmaxFamily<dnnl::logsoftmax_forward, dnnl::logsoftmax_backward>;

void softmax_forward(const ForwardCall& call) {
  Softmax::forward("softmax", call.inputs[0].contiguous(), call.outputs[0]);
}

void softmax_backward(const BackwardCall& call) {
  if (call.grad_inputs[0].defined())
    Softmax::backward("softmax", call.outputs[0].contiguous(), call.grad_outputs[0].contiguous(),
                      call.grad_inputs[0]);
}

void log_softmax_forward(const ForwardCall& call) {
  LogSoftmax::forward("log_softmax", call.inputs[0].contiguous(), call.outputs[0]);
}

void log_softmax_backward(const BackwardCall& call) {
  if (call.grad_inputs[0].defined())
    LogSoftmax::backward("log_softmax", call.outputs[0].contiguous(),
                         call.grad_outputs[0].contiguous(), call.grad_inputs[0]);
}

// ---- cross_entropy ----------------------------------------------------------------------

// Labels arrive as floats; each must be an exact class id. Checked before any parallel
// loop, since an exception may not leave an OpenMP region.
std::vector<int64_t> checked_labels(const Tensor& labels, int64_t classes) {
  const std::vector<float> v = labels.to_vector();
  std::vector<int64_t> ids(v.size());
  for (size_t n = 0; n < v.size(); ++n) {
    const float f = v[n];
    if (!(f >= 0.0f && f < float(classes) && std::floor(f) == f))
      throw error("cross_entropy: label of row ", n, " is ", f,
                  "; expected an integer class id in [0, ", classes, ")");
    ids[n] = static_cast<int64_t>(f);
  }
  return ids;
}

// loss = mean_n -[(1 - eps) log p_{n,y_n} + eps mean_c log p_{n,c}], p = softmax(logits).
// Rows are reduced in double after the usual max shift, so large logits do not overflow.
void cross_entropy_forward(const ForwardCall& call) {
  const Tensor x = call.inputs[0].contiguous();
  const int64_t rows = x.dim(0), classes = x.dim(1);
  const std::vector<int64_t> labels = checked_labels(call.inputs[1], classes);
  const double eps = std::get<CrossEntropyAttrs>(call.attrs).label_smoothing;
  // Probabilities for backward; written only when a backward will run.
  Tensor probs = call.saved != nullptr ? Tensor::empty(x.shape()) : Tensor();
  float* p = probs.defined() ? probs.data() : nullptr;
  const float* logits = x.data();
  double total = 0.0;
#pragma omp parallel for reduction(+ : total)
  for (int64_t n = 0; n < rows; ++n) {
    const float* row = logits + n * classes;
    const float peak = classes > 0 ? *std::max_element(row, row + classes) : 0.0f;
    double z = 0.0, sum_shifted = 0.0;
    for (int64_t c = 0; c < classes; ++c) {
      const double shifted = double(row[c]) - double(peak);
      z += std::exp(shifted);
      sum_shifted += shifted;
    }
    const double log_z = std::log(z);
    const double log_p_label = double(row[labels[size_t(n)]]) - double(peak) - log_z;
    const double mean_log_p = sum_shifted / double(classes) - log_z;
    total += -((1.0 - eps) * log_p_label + eps * mean_log_p);
    if (p != nullptr)
      for (int64_t c = 0; c < classes; ++c)
        p[n * classes + c] = static_cast<float>(std::exp(double(row[c]) - double(peak) - log_z));
  }
  call.outputs[0].data()[0] = rows > 0 ? static_cast<float>(total / double(rows)) : 0.0f;
  if (call.saved != nullptr) call.saved->push_back(probs);
}

// dlogits = (p - target) g / N with target = (1 - eps) onehot(y) + eps / C.
void cross_entropy_backward(const BackwardCall& call) {
  const Tensor& dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  CG_ASSERT(call.saved.size() == 1, "cross_entropy backward without saved probabilities");
  const Tensor probs = call.saved[0];
  const int64_t rows = dx.dim(0), classes = dx.dim(1);
  const std::vector<int64_t> labels = checked_labels(call.inputs[1], classes);
  const float eps = std::get<CrossEntropyAttrs>(call.attrs).label_smoothing;
  const float factor = rows > 0 ? call.grad_outputs[0].item() / float(rows) : 0.0f;
  const float smooth = classes > 0 ? eps / float(classes) : 0.0f;
  const float* p = probs.data();
  float* d = dx.data();
#pragma omp parallel for
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t c = 0; c < classes; ++c)
      d[n * classes + c] = (p[n * classes + c] - smooth) * factor;
    d[n * classes + labels[size_t(n)]] -= (1.0f - eps) * factor;
  }
}
}  // namespace

void add_softmax_kernels(KernelTable& table) {
  set(table, OpKind::softmax, softmax_forward, softmax_backward);
  set(table, OpKind::log_softmax, log_softmax_forward, log_softmax_backward);
  set(table, OpKind::cross_entropy, cross_entropy_forward, cross_entropy_backward);
}

}  // namespace cellgraph::cpu
