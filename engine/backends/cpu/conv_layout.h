// Moving conv2d arguments between our plain tensors (nchw, oihw / goihw) and the blocked
// layouts oneDNN's fast convolution kernels ask for when created with format_tag::any.
// A LayoutArg lives in a cached primitive entry and holds its reorder primitive; a Staging
// lives for one kernel call and owns the scratch buffers the reordered copies sit in.
// Where no layout has a direct kernel, conv.cpp runs our own gradient loops on the plain
// layout instead (conv_loops.h).
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

}  // namespace cellgraph::cpu
