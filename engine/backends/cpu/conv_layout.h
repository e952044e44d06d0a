// Moving conv2d arguments between our plain tensors (nchw, oihw / goihw) and the blocked
// layouts oneDNN's fast convolution kernels ask for when created with format_tag::any.
// A LayoutArg lives in a cached primitive entry and holds its reorder primitive; a Staging
// lives for one kernel call and owns the scratch buffers the reordered copies sit in.
// Where oneDNN has no direct kernel in any layout (depthwise backward with dilation, or
// the weights gradient of a depthwise kernel other than 3x3) the plain layout gets our
// own loops instead of oneDNN's im2col + GEMM.
#pragma once

#include <vector>

#include "engine/backends/cpu/dnnl_context.h"

namespace cellgraph::cpu {

// True when oneDNN resolved the primitive to im2col + GEMM ("x64:gemm:jit", "gemm:blas") or
// a reference loop ("ref:any"): those run on plain layouts, so a format_tag::any request
// gains nothing. brgemm-based kernels ("brgemm_bwd_d:...", "brgconv:...") are direct ones.
bool is_generic_impl(const dnnl::primitive_desc_base& pd);

// One argument of a cached primitive: the layout of our tensor and the one the primitive
// wants. When they differ it owns the reorder (plain -> wanted for inputs, back for outputs).
class LayoutArg {
 public:
  LayoutArg() = default;
  LayoutArg(const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted, bool output);

  bool reordered() const { return reordered_; }
  const dnnl::memory::desc& plain() const { return plain_; }
  const dnnl::memory::desc& wanted() const { return wanted_; }
  bool output() const { return output_; }
  const dnnl::reorder& reorder() const { return reorder_; }

 private:
  dnnl::memory::desc plain_, wanted_;
  bool output_ = false;
  bool reordered_ = false;
  dnnl::reorder reorder_;
};

// The memory objects of one primitive call. Scratch comes from the caching allocator
// (Tensor::empty), so steady-state training makes no system allocations.
class Staging {
 public:
  // Memory holding t's values in arg.wanted(): t's own buffer, or a reordered copy. A tensor
  // already staged to the same layout (dy for both backward primitives) is reordered once.
  dnnl::memory input(const LayoutArg& arg, const Tensor& t);
  // Memory the primitive writes: t's own buffer, or scratch that finish() copies into t.
  dnnl::memory output(const LayoutArg& arg, const Tensor& t);
  // Reorders every pending output back into its tensor (call after the primitive ran).
  void finish();

 private:
  struct Staged {
    const float* source;
    dnnl::memory::desc layout;
    dnnl::memory memory;
  };
  struct Pending {
    const LayoutArg* arg;
    dnnl::memory scratch, target;
  };
  dnnl::memory scratch_for(const dnnl::memory::desc& desc);

  std::vector<Tensor> buffers_;  // keeps the scratch alive until the stream has waited
  std::vector<Staged> inputs_;
  std::vector<Pending> outputs_;
};

// A depthwise conv (groups == C == O) on plain layouts. One plane is one (image, channel)
// pair; planes are independent, so the loops run in parallel over the N x C planes.
struct DepthwiseShape {
  int64_t planes, channels, h, w, oh, ow, kh, kw, stride, pad, dilation;
};

// dx from dy and the weights [C, 1, kh, kw]; overwrites dx.
void depthwise_backward_data(const DepthwiseShape& d, const float* dy, const float* w, float* dx);
// dw [C, 1, kh, kw] from x and dy; overwrites dw (no bias gradient).
void depthwise_backward_weights(const DepthwiseShape& d, const float* x, const float* dy,
                                float* dw);

// dw [O, C] of a 1x1, stride 1, unpadded conv: dw[o, c] = sum over n, p of dy[n, o, p] *
// x[n, c, p] for `plane` pixels p; overwrites dw. Each thread sums its images into its own
// copy, 4 x 4 weights per pass over the pixels.
void pointwise_backward_weights(int64_t batch, int64_t in, int64_t out, int64_t plane,
                                const float* x, const float* dy, float* dw);

}  // namespace cellgraph::cpu
