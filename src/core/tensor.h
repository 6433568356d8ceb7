// TensorView: a non-owning, typed, shaped view of contiguous memory (row-major, last dim fastest).
// Storage belongs to an Arena (one per lifetime class) or to a mmapped checkpoint.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/dtype.h"

namespace vila {

constexpr int kMaxDims = 4;

struct Shape {
  std::array<int64_t, kMaxDims> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const;
  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }
  std::string to_string() const;  // "[2, 3, 4]"
};

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;

  TensorView() = default;
  TensorView(void* d, DType t, Shape s) : data(d), dtype(t), shape(s) {}

  bool empty() const { return data == nullptr; }
  int64_t numel() const { return shape.numel(); }
  int64_t nbytes() const { return dtype_bytes(dtype, numel()); }
  int64_t dim(int i) const { return shape[i]; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  float* f32() const { return static_cast<float*>(data); }
};

// An fp32 view of `data` (the common case for activations).
inline TensorView f32_view(float* data, Shape shape) { return {data, DType::kF32, shape}; }

}  // namespace vila
