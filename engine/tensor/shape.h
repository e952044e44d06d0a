// Shapes are small vectors of extents; tensors are float32, NCHW for images.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace cellgraph {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int i) { return dims_[static_cast<size_t>(i)]; }
  int64_t numel() const;
  const std::vector<int64_t>& dims() const { return dims_; }
  // Row-major (contiguous) strides for these extents, in elements.
  std::vector<int64_t> contiguous_strides() const;
  std::string str() const;  // "[64, 16, 32, 32]"

  bool operator==(const Shape&) const = default;

 private:
  std::vector<int64_t> dims_;
};

}  // namespace cellgraph
