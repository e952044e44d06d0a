// Tensor: a float32 view (shape, strides in elements, offset) of shared storage on one
// device. Copying a Tensor copies the view, not the data. A default-constructed Tensor is
// "undefined" and stands for an absent optional input or gradient.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/tensor/device.h"
#include "engine/tensor/shape.h"

namespace cellgraph {

class CachingAllocator;

// A block from a device's caching allocator; returned to it when the last view dies.
class Storage {
 public:
  Storage(Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  float* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  size_t bytes_;
  float* data_;
  CachingAllocator* allocator_;
};

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, Device device = Device::cpu);  // uninitialised
  static Tensor zeros(const Shape& shape, Device device = Device::cpu);
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device device = Device::cpu);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  Device device() const { return device_; }
  bool is_contiguous() const;

  // Pointer to element 0 of this view (device memory for non-CPU tensors).
  float* data() const;

  // Views (no copy). reshape requires a contiguous tensor; narrow selects [start, start+len)
  // along one dimension.
  Tensor reshape(const Shape& shape) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const;

  Tensor contiguous() const;  // this, or a contiguous copy
  Tensor clone() const;       // always a new contiguous copy
  Tensor to(Device device) const;
  // Write through the view (the view itself is unchanged, hence const).
  void copy_from(const Tensor& src) const;  // same shape; any devices
  void fill(float value) const;             // contiguous tensors only

  std::vector<float> to_vector() const;  // contiguous host copy
  float item() const;                    // the value of a one-element tensor

  bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t offset_ = 0;
  Device device_ = Device::cpu;
};

}  // namespace cellgraph
