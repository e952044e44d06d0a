// batch_norm on oneDNN. Training normalises with the batch statistics (oneDNN's variance is
// the biased one) and then updates the running statistics in place with PyTorch's rule;
// eval normalises with the running statistics (use_global_stats). The forward saves the
// statistics it normalised with, [mean, variance], so the backward needs neither the
// running tensors nor a recomputation. [N,C] input is treated as [N,C,1,1].
#include <bit>
#include <cstdint>
#include <string>

#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/kernels.h"

namespace cellgraph::cpu {

namespace {
using dnnl::memory;
using dnnl::normalization_flags;
using dnnl::prop_kind;

memory::desc data_desc(const Shape& x) {
  const int64_t h = x.rank() == 4 ? x[2] : 1;
  const int64_t w = x.rank() == 4 ? x[3] : 1;
  return memory::desc({x[0], x[1], h, w}, memory::data_type::f32, memory::format_tag::nchw);
}

normalization_flags flags_for(bool training, bool affine) {
  normalization_flags flags = normalization_flags::none;
  if (!training) flags = flags | normalization_flags::use_global_stats;
  if (affine) flags = flags | normalization_flags::use_scale | normalization_flags::use_shift;
  return flags;
}

std::string bn_key(const char* what, const Shape& x, bool training, bool affine, float eps) {
  // eps by its bits: printing it would round.
  return cache_key(what, '|', x.str(), "|t", training, "a", affine, "e",
                   std::bit_cast<uint32_t>(eps));
}

dnnl::batch_normalization_forward::primitive_desc forward_pd(prop_kind prop, const Shape& x,
                                                             float eps, normalization_flags f) {
  const dnnl::batch_normalization_forward::desc d(prop, data_desc(x), eps, f);
  return dnnl::batch_normalization_forward::primitive_desc(d, dnnl_engine());
}

struct ForwardEntry {
  dnnl::batch_normalization_forward primitive;
};
struct BackwardEntry {
  dnnl::batch_normalization_backward primitive;
};

// running = (1 - m) * running + m * batch, with the variance made unbiased (n / (n - 1)).
// The running tensors are the op's inputs: the update is visible to their owner.
void update_running(const Tensor& running_mean, const Tensor& running_var, const Tensor& mean,
                    const Tensor& var, float momentum, int64_t n) {
  const Tensor rm = running_mean.contiguous();
  const Tensor rv = running_var.contiguous();
  const double unbias = double(n) / double(n - 1);
  for (int64_t c = 0; c < mean.numel(); ++c) {
    rm.data()[c] = (1.0f - momentum) * rm.data()[c] + momentum * mean.data()[c];
    rv.data()[c] = (1.0f - momentum) * rv.data()[c] + momentum * float(var.data()[c] * unbias);
  }
  // Strided running tensors were updated in a copy; write it back.
  if (!rm.shares_storage_with(running_mean)) running_mean.copy_from(rm);
  if (!rv.shares_storage_with(running_var)) running_var.copy_from(rv);
}

void batch_norm_forward(const ForwardCall& call) {
  const auto& a = std::get<BatchNormAttrs>(call.attrs);
  const Tensor x = call.inputs[0].contiguous();
  const bool affine = call.inputs[1].defined();
  const int64_t channels = x.dim(1);
  const int64_t n = x.numel() / channels;  // values per channel
  if (a.training && n < 2)
    throw error("batch_norm: training needs more than one value per channel, got input ",
                x.shape().str());

  const normalization_flags flags = flags_for(a.training, affine);
  // Training always needs the batch statistics (for the running update), so it runs the
  // training primitive even when no backward follows.
  const prop_kind prop = a.training ? prop_kind::forward_training : prop_kind::forward_inference;
  auto& entry = cached<ForwardEntry>(bn_key("bn_fwd", x.shape(), a.training, affine, a.eps), [&] {
    return ForwardEntry{
        CG_DNNL(dnnl::batch_normalization_forward(forward_pd(prop, x.shape(), a.eps, flags)))};
  });

  // Training: oneDNN writes the batch statistics here. Eval: the running statistics are
  // read; copied when saved, since an optimizer or a later training step may change them
  // before this node's backward runs.
  Tensor mean, var;
  if (a.training) {
    mean = Tensor::empty({channels});
    var = Tensor::empty({channels});
  } else {
    mean = call.saved ? call.inputs[3].clone() : call.inputs[3].contiguous();
    var = call.saved ? call.inputs[4].clone() : call.inputs[4].contiguous();
  }
  const memory::desc xd = data_desc(x.shape());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(x, xd)},
                                       {DNNL_ARG_DST, wrap(call.outputs[0], xd)},
                                       {DNNL_ARG_MEAN, wrap(mean)},
                                       {DNNL_ARG_VARIANCE, wrap(var)}};
  Tensor gamma, beta;
  if (affine) {
    gamma = call.inputs[1].contiguous();
    beta = call.inputs[2].contiguous();
    args.emplace(DNNL_ARG_SCALE, wrap(gamma));
    args.emplace(DNNL_ARG_SHIFT, wrap(beta));
  }
  CG_DNNL(entry.primitive.execute(dnnl_stream(), args));
  CG_DNNL(dnnl_stream().wait());

  if (a.training) update_running(call.inputs[3], call.inputs[4], mean, var, a.momentum, n);
  if (call.saved) {
    call.saved->push_back(mean);
    call.saved->push_back(var);
  }
}

void batch_norm_backward(const BackwardCall& call) {
  const auto& a = std::get<BatchNormAttrs>(call.attrs);
  const Shape& xs = call.input_shapes[0];
  const bool affine = call.input_shapes[1].rank() != 0;
  const normalization_flags flags = flags_for(a.training, affine);
  // oneDNN 2.6 implements backward_data (dx only) without scale and shift only, so with
  // affine on the full backward runs and unwanted parameter gradients go to scratch.
  const prop_kind prop = affine ? prop_kind::backward : prop_kind::backward_data;
  auto& entry = cached<BackwardEntry>(bn_key("bn_bwd", xs, a.training, affine, a.eps), [&] {
    const memory::desc xd = data_desc(xs);
    const dnnl::batch_normalization_backward::desc d(prop, xd, xd, a.eps, flags);
    const auto hint = forward_pd(prop_kind::forward_training, xs, a.eps, flags);
    return BackwardEntry{CG_DNNL(dnnl::batch_normalization_backward(
        dnnl::batch_normalization_backward::primitive_desc(d, dnnl_engine(), hint)))};
  });

  CG_ASSERT(call.saved.size() == 2, "batch_norm backward without the forward's statistics");
  const Tensor x = call.inputs[0].contiguous();
  const Tensor dy = call.grad_outputs[0].contiguous();
  // oneDNN always produces dx; scratch space when it is not wanted.
  const Tensor dx = call.grad_inputs[0].defined() ? call.grad_inputs[0] : Tensor::empty(xs);
  const memory::desc xd = data_desc(xs);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(x, xd)},
                                       {DNNL_ARG_DIFF_DST, wrap(dy, xd)},
                                       {DNNL_ARG_MEAN, wrap(call.saved[0])},
                                       {DNNL_ARG_VARIANCE, wrap(call.saved[1])},
                                       {DNNL_ARG_DIFF_SRC, wrap(dx, xd)}};
  Tensor gamma, beta, dgamma, dbeta;
  if (affine) {
    const Shape c{xs[1]};
    gamma = call.inputs[1].contiguous();
    // oneDNN 2.6 lists the shift as an input of the backward, though nothing depends on it.
    beta = call.inputs[2].contiguous();
    dgamma = call.grad_inputs[1].defined() ? call.grad_inputs[1] : Tensor::empty(c);
    dbeta = call.grad_inputs[2].defined() ? call.grad_inputs[2] : Tensor::empty(c);
    args.emplace(DNNL_ARG_SCALE, wrap(gamma));
    args.emplace(DNNL_ARG_SHIFT, wrap(beta));
    args.emplace(DNNL_ARG_DIFF_SCALE, wrap(dgamma));
    args.emplace(DNNL_ARG_DIFF_SHIFT, wrap(dbeta));
  }
  CG_DNNL(entry.primitive.execute(dnnl_stream(), args));
  CG_DNNL(dnnl_stream().wait());
}
}  // namespace

void add_batch_norm_kernels(KernelTable& table) {
  set(table, OpKind::batch_norm, batch_norm_forward, batch_norm_backward);
}

}  // namespace cellgraph::cpu
