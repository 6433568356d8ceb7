// Element types. Scalar types have a fixed byte width; block-quantized types (packed int4 with
// per-group scales, fp8 with per-block scales) describe their layout through DTypeInfo so that
// later low-precision recipes (COAT fp8, Jetfire int8, AWQ int4) fit without changing callers.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/status.h"

namespace vila {

enum class DType : uint8_t {
  kF32 = 0,
  kBF16,
  kF16,
  kF8E4M3,  // fp8, 4-bit exponent (forward activations / weights)
  kF8E5M2,  // fp8, 5-bit exponent (gradients)
  kI8,
  kI32,
  kI64,
  kU8,
  kBool,
  kI4Packed,  // two 4-bit values per byte, low nibble first; scales live in a separate tensor
  kCount,
};

struct DTypeInfo {
  const char* name;              // our name: "f32", "bf16", ...
  const char* safetensors_name;  // "F32", "BF16", ... or nullptr if safetensors has none
  int bits;                      // bits per element
  bool is_float;
};

const DTypeInfo& dtype_info(DType dtype);
inline const char* dtype_name(DType dtype) { return dtype_info(dtype).name; }
// Bytes taken by `count` elements (rounded up for sub-byte types).
inline int64_t dtype_bytes(DType dtype, int64_t count) {
  return (count * dtype_info(dtype).bits + 7) / 8;
}
StatusOr<DType> dtype_from_safetensors(std::string_view name);
StatusOr<DType> dtype_from_string(std::string_view name);  // "f32"/"fp32"/"float32", "bf16", ...

// ---- scalar conversions (round-to-nearest-even, as PyTorch does) ----
inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40u);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts `count` elements of `src` (of type `src_dtype`) to fp32. Supports f32, bf16, f16.
Status convert_to_f32(DType src_dtype, const void* src, float* dst, int64_t count);
// Converts fp32 to f32, bf16 or f16.
Status convert_from_f32(const float* src, DType dst_dtype, void* dst, int64_t count);

}  // namespace vila
