// Data-movement kernels: channel concat / split, strided slice, zero, reshape, full sum.
// Concat (and split's backward, which is a concat of the piece gradients) runs as the
// oneDNN concat primitive, a rectifying concat (ConcatAttrs::relu) as hand loops that apply
// max(x, 0) as they copy; the rest are copies that oneDNN has no primitive for.
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "engine/backends/cpu/dnnl_context.h"
#include "engine/backends/cpu/kernels.h"
#include "engine/backends/cpu/vector_loops.h"

namespace cellgraph::cpu {

namespace {
void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.data() == src.data()) return;
  dst.copy_from(src);
}

// Elements per channel: the product of the extents after dim 1.
int64_t per_channel(const Shape& s) {
  int64_t inner = 1;
  for (int d = 2; d < s.rank(); ++d) inner *= s[d];
  return inner;
}

// What channel_blocks does with each block: copy it (piece to whole or whole to piece), or
// for a rectifying concat rectify it into the whole (forward), or mask the whole's
// gradient block by y > 0 into the piece (backward); the backward kinds add into the piece
// where it holds another reader's gradient already.
enum class BlockMove { to_whole, to_piece, rectify_to_whole, masked_to_piece };

// Moves channel blocks between a whole [N, sum C_i, ...] tensor and its pieces
// [N, C_i, ...] (C_i = channels[i]), in either direction: the hand path of concat and
// split. An undefined piece is skipped (a gradient nobody wants). `adds`: bit i set, piece
// i receives by adding (the backward kinds only). `y`: the rectifying concat's output, for
// its mask.
void channel_blocks(const std::vector<Tensor>& pieces, const std::vector<int64_t>& channels,
                    const Tensor& whole, BlockMove move, uint32_t adds = 0,
                    const float* y = nullptr) {
  const int64_t batch = whole.dim(0), total = whole.dim(1);
  const int64_t inner = per_channel(whole.shape());
  std::vector<int64_t> first(pieces.size() + 1, 0);  // first channel of each piece
  for (size_t i = 0; i < pieces.size(); ++i) first[i + 1] = first[i] + channels[i];
  float* w = whole.data();
#pragma omp parallel for collapse(2)
  for (int64_t n = 0; n < batch; ++n) {
    for (size_t i = 0; i < pieces.size(); ++i) {
      const int64_t c = channels[i], count = c * inner;
      if (count == 0 || !pieces[i].defined()) continue;
      const int64_t at = (n * total + first[i]) * inner;
      float* whole_block = w + at;
      float* piece_block = pieces[i].data() + n * count;
      const bool add = i < 32 && (adds >> i & 1u) != 0;
      switch (move) {
        case BlockMove::to_whole:
          std::memcpy(whole_block, piece_block, sizeof(float) * size_t(count));
          break;
        case BlockMove::rectify_to_whole:
          rectify(piece_block, whole_block, count);
          break;
        case BlockMove::to_piece:
          if (add)
            axpy(1.0f, whole_block, piece_block, count);
          else
            std::memcpy(piece_block, whole_block, sizeof(float) * size_t(count));
          break;
        case BlockMove::masked_to_piece:
          mask_by(whole_block, y + at, piece_block, count, add);
          break;
      }
    }
  }
}

std::vector<int64_t> channels_of(const std::vector<Tensor>& pieces) {
  std::vector<int64_t> channels;
  channels.reserve(pieces.size());
  for (const Tensor& t : pieces) channels.push_back(t.dim(1));
  return channels;
}

struct Concat {
  dnnl::concat prim;
};

// dst = concat of srcs along channels.
void concat_into(const std::vector<Tensor>& srcs, const Tensor& dst) {
  if (dst.numel() == 0) return;
  const bool any_empty =
      std::any_of(srcs.begin(), srcs.end(), [](const Tensor& t) { return t.numel() == 0; });
  if (any_empty || dst.rank() > 5) {  // oneDNN rejects empty sources and rank > 5
    channel_blocks(srcs, channels_of(srcs), dst, BlockMove::to_whole);
    return;
  }
  std::string key = cache_key("concat|", dst.shape().str());
  for (const Tensor& t : srcs) key += t.shape().str();
  auto& entry = cached<Concat>(key, [&] {
    std::vector<dnnl::memory::desc> descs;
    descs.reserve(srcs.size());
    for (const Tensor& t : srcs) descs.push_back(plain_desc(t.shape()));
    return Concat{dnnl::concat(
        CG_DNNL(dnnl::concat::primitive_desc(plain_desc(dst.shape()), 1, descs, dnnl_engine())))};
  });
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DST, wrap(dst)}};
  for (size_t i = 0; i < srcs.size(); ++i)
    args.emplace(DNNL_ARG_MULTIPLE_SRC + int(i), wrap(srcs[i]));
  CG_DNNL(entry.prim.execute(dnnl_stream(), args));
  dnnl_stream().wait();
}

std::vector<Tensor> contiguous_all(std::span<const Tensor> ts) {
  std::vector<Tensor> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(t.contiguous());
  return out;
}

// A rectifying concat writes max(x, 0) block by block on the hand path: oneDNN's concat
// has no post-op. What the fold saves over a step: docs/architecture.md ("Folded ReLUs").
void concat_forward(const ForwardCall& call) {
  const std::vector<Tensor> srcs = contiguous_all(call.inputs);
  if (std::get<ConcatAttrs>(call.attrs).relu)
    channel_blocks(srcs, channels_of(srcs), call.outputs[0], BlockMove::rectify_to_whole);
  else
    concat_into(srcs, call.outputs[0]);
}

// Only the inputs that want a gradient get their block, added where an input holds another
// reader's gradient already (a search cell's node output is read by the concat and by later
// nodes' candidates).
void concat_backward(const BackwardCall& call) {
  std::vector<int64_t> channels;
  channels.reserve(call.input_shapes.size());
  for (const Shape& s : call.input_shapes) channels.push_back(s[1]);
  const std::vector<Tensor> grads(call.grad_inputs.begin(), call.grad_inputs.end());
  const Tensor dy = call.grad_outputs[0].contiguous();
  if (!std::get<ConcatAttrs>(call.attrs).relu) {
    channel_blocks(grads, channels, dy, BlockMove::to_piece, call.accumulate);
    return;
  }
  CG_ASSERT(!call.outputs.empty() && call.outputs[0].defined(),
            "rectifying concat backward without its output");
  const Tensor y = call.outputs[0].contiguous();
  channel_blocks(grads, channels, dy, BlockMove::masked_to_piece, call.accumulate, y.data());
}

void split_forward(const ForwardCall& call) {
  const std::vector<Tensor> pieces(call.outputs.begin(), call.outputs.end());
  channel_blocks(pieces, channels_of(pieces), call.inputs[0].contiguous(), BlockMove::to_piece);
}

void split_backward(const BackwardCall& call) {
  if (call.grad_inputs[0].defined())
    concat_into(contiguous_all(call.grad_outputs), call.grad_inputs[0]);
}

// ---- slice ------------------------------------------------------------------------------

// A slice seen as rank 5 (leading extents of 1): out[i] = in[start + i * step] per dim.
struct SliceMap {
  std::array<int64_t, 5> out{}, start{}, step{}, in_stride{};
};

SliceMap slice_map(const SliceAttrs& a, const Shape& in, const Shape& out) {
  CG_ASSERT(in.rank() <= 5, "slice supports rank <= 5, got ", in.str());
  SliceMap m;
  const int pad = 5 - in.rank();
  m.out.fill(1);
  m.step.fill(1);
  const std::vector<int64_t> strides = in.contiguous_strides();
  for (int d = 0; d < in.rank(); ++d) {
    const auto i = size_t(d), j = size_t(d) + size_t(pad);
    m.out[j] = out[d];
    m.start[j] = a.starts[i];
    m.step[j] = a.steps[i];
    m.in_stride[j] = strides[i];
  }
  return m;
}

// One row of a slice: `width` elements `hop` apart in the full tensor. Every second element
// (the factorized reduce's slices, hop 2) gets loops the compiler turns into whole-vector
// loads and shuffles; with the hop unknown to it they ran element by element: x[:, :,
// 0::2, 0::2] of [64, 64, 32, 32] took 3.7 ms forward, 1.1-1.3 ms as vectors (1 thread).
[[gnu::target_clones("avx512f", "avx2", "default")]] void gather_row(const float* f, int64_t hop,
                                                                     float* s, int64_t width) {
  if (hop == 2) {
#pragma omp simd
    for (int64_t k = 0; k < width; ++k) s[k] = f[2 * k];
    return;
  }
  for (int64_t k = 0; k < width; ++k) s[k] = f[k * hop];
}

[[gnu::target_clones("avx512f", "avx2", "default")]] void scatter_row(const float* s, int64_t hop,
                                                                      float* f, int64_t width,
                                                                      bool add) {
  if (hop == 2 && add) {
#pragma omp simd
    for (int64_t k = 0; k < width; ++k) f[2 * k] += s[k];
    return;
  }
  if (hop == 2) {
#pragma omp simd
    for (int64_t k = 0; k < width; ++k) f[2 * k] = s[k];
    return;
  }
  for (int64_t k = 0; k < width; ++k) f[k * hop] = add ? f[k * hop] + s[k] : s[k];
}

// Copies between the slice (contiguous, `sliced`) and its positions in `full`. One task per
// plane (the first three dims): its offset is found by division once, then its rows follow
// by a fixed hop. (Dividing per row cost more than the copy: a factorized reduce's slices
// have rows of 8 to 16 elements, and took 2.4 ms each at batch 64; issue 17.)
void slice_copy(const SliceMap& m, float* full, float* sliced, bool to_sliced, bool add = false) {
  const int64_t planes = m.out[0] * m.out[1] * m.out[2];
  const int64_t rows = m.out[3], width = m.out[4];
  const int64_t row_hop = m.step[3] * m.in_stride[3], hop = m.step[4] * m.in_stride[4];
#pragma omp parallel for
  for (int64_t p = 0; p < planes; ++p) {
    int64_t rest = p;
    int64_t offset = m.start[4] * m.in_stride[4] + m.start[3] * m.in_stride[3];
    for (int d = 2; d >= 0; --d) {
      const auto u = size_t(d);
      offset += (m.start[u] + (rest % m.out[u]) * m.step[u]) * m.in_stride[u];
      rest /= m.out[u];
    }
    float* s = sliced + p * rows * width;
    for (int64_t r = 0; r < rows; ++r, offset += row_hop, s += width) {
      if (to_sliced)
        gather_row(full + offset, hop, s, width);
      else
        scatter_row(s, hop, full + offset, width, add);
    }
  }
}

void slice_forward(const ForwardCall& call) {
  const Tensor x = call.inputs[0].contiguous();
  const Tensor& y = call.outputs[0];
  if (y.numel() == 0) return;
  slice_copy(slice_map(std::get<SliceAttrs>(call.attrs), x.shape(), y.shape()), x.data(), y.data(),
             true);
}

// Elements the slice skipped get zero; the selected ones get dy (no element is selected
// twice, since every step is >= 1). Adding into a gradient already there (a factorized
// reduce's two slices of one ReLU output) touches only the selected elements, instead of
// writing a zeroed copy that the autodiff then adds: three passes over the input's size.
void slice_backward(const BackwardCall& call) {
  const Tensor& dx = call.grad_inputs[0];
  if (!dx.defined()) return;
  const Tensor dy = call.grad_outputs[0].contiguous();
  const bool add = call.accumulates_into(0);
  if (!add) dx.fill(0.0f);
  if (dy.numel() == 0) return;
  slice_copy(slice_map(std::get<SliceAttrs>(call.attrs), dx.shape(), dy.shape()), dx.data(),
             dy.data(), false, add);
}

// ---- zero, reshape, sum -----------------------------------------------------------------

void zero_forward(const ForwardCall& call) { call.outputs[0].fill(0.0f); }

void reshape_forward(const ForwardCall& call) {
  const Tensor& y = call.outputs[0];
  copy_into(y, call.inputs[0].contiguous().reshape(y.shape()));
}

void reshape_backward(const BackwardCall& call) {
  const Tensor& dx = call.grad_inputs[0];
  if (dx.defined()) copy_into(dx, call.grad_outputs[0].contiguous().reshape(dx.shape()));
}

// A scalar loss over a whole tensor: summed in double so the order of threads does not
// visibly change the result.
void sum_forward(const ForwardCall& call) {
  const Tensor x = call.inputs[0].contiguous();
  const float* v = x.data();
  const int64_t n = x.numel();
  double total = 0.0;
#pragma omp parallel for reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) total += double(v[i]);
  call.outputs[0].data()[0] = static_cast<float>(total);
}

void sum_backward(const BackwardCall& call) {
  const Tensor& dx = call.grad_inputs[0];
  if (dx.defined()) dx.fill(call.grad_outputs[0].item());
}
}  // namespace

void add_shape_ops_kernels(KernelTable& table) {
  set(table, OpKind::concat, concat_forward, concat_backward, /*accumulates=*/true);
  set(table, OpKind::split, split_forward, split_backward);
  set(table, OpKind::slice, slice_forward, slice_backward, /*accumulates=*/true);
  set(table, OpKind::zero, zero_forward, nullptr);  // not differentiable: never recorded
  set(table, OpKind::reshape, reshape_forward, reshape_backward);
  set(table, OpKind::sum, sum_forward, sum_backward);
}

}  // namespace cellgraph::cpu
