#include "engine/backends/cpu/dnnl_context.h"

namespace cellgraph::cpu {

dnnl::engine& dnnl_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_stream() {
  static dnnl::stream stream(dnnl_engine());
  return stream;
}

dnnl::memory::dims dims_of(const Shape& shape) {
  return dnnl::memory::dims(shape.dims().begin(), shape.dims().end());
}

dnnl::memory::desc plain_desc(const Shape& shape) {
  using Tag = dnnl::memory::format_tag;
  static const Tag kTags[] = {Tag::undef, Tag::a, Tag::ab, Tag::abc, Tag::abcd, Tag::abcde};
  CG_ASSERT(shape.rank() >= 1 && shape.rank() <= 5, "rank ", shape.rank());
  return dnnl::memory::desc(dims_of(shape), dnnl::memory::data_type::f32, kTags[shape.rank()]);
}

dnnl::memory wrap(const Tensor& t) { return wrap(t, plain_desc(t.shape())); }

dnnl::memory wrap(const Tensor& t, const dnnl::memory::desc& desc) {
  CG_ASSERT(t.is_contiguous(), "oneDNN needs a contiguous tensor, got a strided view");
  return dnnl::memory(desc, dnnl_engine(), t.data());
}

}  // namespace cellgraph::cpu
