#include "engine/backends/cpu/conv_layout.h"

#include <string_view>

namespace cellgraph::cpu {

bool is_generic_impl(const dnnl::primitive_desc_base& pd) {
  const std::string_view name = pd.impl_info_str();
  return name.starts_with("gemm:") || name.find(":gemm:") != std::string_view::npos ||
         name.starts_with("ref");
}

LayoutArg::LayoutArg(const dnnl::memory::desc& plain, const dnnl::memory::desc& wanted, bool output)
    : plain_(plain), wanted_(wanted), output_(output), reordered_(plain != wanted) {
  if (!reordered_) return;
  const auto& from = output ? wanted : plain;
  const auto& to = output ? plain : wanted;
  reorder_ =
      CG_DNNL(dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_engine(), from, dnnl_engine(), to)));
}

dnnl::memory Staging::scratch_for(const dnnl::memory::desc& desc) {
  // Blocked layouts pad channels up to the block (16), so size by the descriptor, not t.
  const int64_t floats = int64_t((desc.get_size() + sizeof(float) - 1) / sizeof(float));
  buffers_.push_back(Tensor::empty(Shape{floats}));
  return CG_DNNL(dnnl::memory(desc, dnnl_engine(), buffers_.back().data()));
}

dnnl::memory Staging::input(const LayoutArg& arg, const Tensor& t) {
  if (!arg.reordered()) return wrap(t, arg.plain());
  for (const Staged& s : inputs_)
    if (s.source == t.data() && s.layout == arg.wanted()) return s.memory;
  dnnl::memory staged = scratch_for(arg.wanted());
  dnnl::memory source = wrap(t, arg.plain());
  CG_DNNL(arg.reorder().execute(dnnl_stream(), source, staged));
  inputs_.push_back({t.data(), arg.wanted(), staged});
  return staged;
}

dnnl::memory Staging::output(const LayoutArg& arg, const Tensor& t) {
  if (!arg.reordered()) return wrap(t, arg.plain());
  dnnl::memory staged = scratch_for(arg.wanted());
  outputs_.push_back({&arg, staged, wrap(t, arg.plain())});
  return staged;
}

void Staging::finish() {
  for (Pending& p : outputs_) CG_DNNL(p.arg->reorder().execute(dnnl_stream(), p.scratch, p.target));
  outputs_.clear();
}

}  // namespace cellgraph::cpu
