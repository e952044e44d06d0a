#include "engine/tensor/tensor.h"

#include <cstring>

#include "engine/backends/backend.h"
#include "engine/error.h"
#include "engine/tensor/allocator.h"

namespace cellgraph {

Storage::Storage(Device device, size_t bytes)
    : device_(device), bytes_(bytes), allocator_(&backend_for(device).allocator()) {
  data_ = static_cast<float*>(allocator_->allocate(bytes));
}

Storage::~Storage() { allocator_->deallocate(data_, bytes_); }

Tensor Tensor::empty(const Shape& shape, Device device) {
  for (int64_t d : shape.dims()) CG_ASSERT(d >= 0, "negative extent in shape ", shape.str());
  Tensor t;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(shape.numel(), 1)) * sizeof(float);
  t.storage_ = std::make_shared<Storage>(device, bytes);
  t.shape_ = shape;
  t.strides_ = shape.contiguous_strides();
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
  CG_ASSERT(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
            " values for shape ", shape.str());
  Tensor t = empty(shape, device);
  backend_for(device).copy_between(t.data(), device, values.data(), Device::cpu, values.size());
  return t;
}

bool Tensor::is_contiguous() const { return strides_ == shape_.contiguous_strides(); }

float* Tensor::data() const {
  CG_ASSERT(defined(), "data() of an undefined tensor");
  return storage_->data() + offset_;
}

Tensor Tensor::reshape(const Shape& shape) const {
  CG_ASSERT(is_contiguous(), "reshape of a non-contiguous view");
  CG_ASSERT(shape.numel() == numel(), "reshape ", shape_.str(), " -> ", shape.str());
  Tensor t = *this;
  t.shape_ = shape;
  t.strides_ = shape.contiguous_strides();
  return t;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  CG_ASSERT(dim >= 0 && dim < rank() && start >= 0 && start + length <= shape_[dim]);
  Tensor t = *this;
  t.shape_[dim] = length;
  t.offset_ += start * strides_[static_cast<size_t>(dim)];
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, device_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor t = empty(shape_, device);
  t.copy_from(*this);
  return t;
}

namespace {
// Copies a strided view row by row: the innermost dimension must be unit-stride on both
// sides, which every view cellgraph creates (narrow on a non-last dim) satisfies.
void copy_strided(const Tensor& dst, const Tensor& src) {
  const int rank = src.rank();
  const int64_t inner = rank ? src.dim(rank - 1) : 1;
  CG_ASSERT(rank == 0 || (src.strides().back() == 1 && dst.strides().back() == 1),
            "copy of a view whose last dimension is strided");
  const int64_t rows = inner ? src.numel() / inner : 0;
  std::vector<int64_t> index(static_cast<size_t>(std::max(rank - 1, 0)), 0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t src_off = 0, dst_off = 0;
    for (int d = 0; d < rank - 1; ++d) {
      src_off += index[static_cast<size_t>(d)] * src.strides()[static_cast<size_t>(d)];
      dst_off += index[static_cast<size_t>(d)] * dst.strides()[static_cast<size_t>(d)];
    }
    Backend& b =
        dst.device() == Device::cpu ? backend_for(src.device()) : backend_for(dst.device());
    b.copy_between(dst.data() + dst_off, dst.device(), src.data() + src_off, src.device(),
                   static_cast<size_t>(inner));
    for (int d = rank - 2; d >= 0; --d) {
      if (++index[static_cast<size_t>(d)] < src.dim(d)) break;
      index[static_cast<size_t>(d)] = 0;
    }
  }
}
}  // namespace

void Tensor::copy_from(const Tensor& src) const {
  CG_ASSERT(src.shape() == shape_, "copy_from ", src.shape().str(), " into ", shape_.str());
  if (numel() == 0) return;
  if (is_contiguous() && src.is_contiguous()) {
    Backend& b = device_ == Device::cpu ? backend_for(src.device()) : backend_for(device_);
    b.copy_between(data(), device_, src.data(), src.device(), static_cast<size_t>(numel()));
  } else {
    copy_strided(*this, src);
  }
}

void Tensor::fill(float value) const {
  CG_ASSERT(is_contiguous(), "fill of a non-contiguous view");
  backend_for(device_).fill(data(), numel(), value);
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  Tensor host = Tensor::empty(shape_, Device::cpu);
  host.copy_from(*this);
  if (!out.empty()) std::memcpy(out.data(), host.data(), out.size() * sizeof(float));
  return out;
}

float Tensor::item() const {
  CG_ASSERT(numel() == 1, "item() of a tensor with shape ", shape_.str());
  return to_vector()[0];
}

}  // namespace cellgraph
