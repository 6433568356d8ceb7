// Precondition helpers shared by the CPU ops. Every op checks dtypes and shapes up front and
// returns InvalidArgument naming the op and operand; the loops after the checks trust them.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// f32, bf16 or f16: the dtypes weights may have (converted to fp32 on the fly).
inline bool is_weight_dtype(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
}

inline int64_t last_dim(const TensorView& t) {
  return t.shape.rank == 0 ? 1 : t.dim(t.shape.rank - 1);
}

// Number of rows when `t` is seen as (rows, last_dim).
inline int64_t row_count(const TensorView& t) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < t.shape.rank; ++i) rows *= t.dim(i);
  return rows;
}

inline Status check_f32(const char* op, const char* operand, const TensorView& t) {
  if (t.empty() && t.numel() != 0) {
    return invalid_argument(std::string(op) + ": " + operand + " is null");
  }
  if (t.dtype != DType::kF32) {
    return invalid_argument(std::string(op) + ": " + operand + " must be f32, got " +
                            dtype_name(t.dtype));
  }
  return ok_status();
}

inline Status check_weight(const char* op, const char* operand, const TensorView& t,
                           int64_t numel) {
  if (t.empty()) return invalid_argument(std::string(op) + ": " + operand + " is null");
  if (!is_weight_dtype(t.dtype)) {
    return invalid_argument(std::string(op) + ": " + operand + " must be f32/bf16/f16, got " +
                            dtype_name(t.dtype));
  }
  if (t.numel() != numel) {
    return invalid_argument(std::string(op) + ": " + operand + " has shape " + t.shape.to_string() +
                            ", expected " + std::to_string(numel) + " elements");
  }
  return ok_status();
}

inline Status check_same_shape(const char* op, const char* a_name, const TensorView& a,
                               const char* b_name, const TensorView& b) {
  if (a.numel() != b.numel() || last_dim(a) != last_dim(b)) {
    return invalid_argument(std::string(op) + ": " + a_name + " " + a.shape.to_string() + " and " +
                            b_name + " " + b.shape.to_string() + " differ");
  }
  return ok_status();
}

// Reads element i of a weight tensor of dtype f32/bf16/f16 as fp32.
inline float weight_at(const TensorView& t, int64_t i) {
  switch (t.dtype) {
    case DType::kBF16:
      return bf16_to_f32(t.as<const uint16_t>()[i]);
    case DType::kF16:
      return f16_to_f32(t.as<const uint16_t>()[i]);
    default:
      return t.as<const float>()[i];
  }
}

}  // namespace vila::cpu
