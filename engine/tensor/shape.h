// Shapes are small vectors of extents; tensors are float32, NCHW for images.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
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
  // The product of the nonzero extents, or nullopt when it overflows int64_t. It bounds the
  // element count and every contiguous stride, so a shape with a span can be given to a
  // tensor; the element count alone cannot tell (a 0 before huge extents makes it 0 while
  // the strides overflow). Readers of shapes from files check it before making a tensor.
  std::optional<int64_t> span() const;
  // Row-major (contiguous) strides for these extents, in elements. A stride that overflows
  // int64_t is an internal error (asserted): shapes from user input are checked first.
  std::vector<int64_t> contiguous_strides() const;
  std::string str() const;  // "[64, 16, 32, 32]"

  bool operator==(const Shape&) const = default;

 private:
  std::vector<int64_t> dims_;
};

}  // namespace cellgraph
