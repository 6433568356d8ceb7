#include "core/dtype.h"

#include <array>
#include <string>

namespace vila {

namespace {
constexpr std::array<DTypeInfo, static_cast<size_t>(DType::kCount)> kDTypeInfos = {{
    {"f32", "F32", 32, true},
    {"bf16", "BF16", 16, true},
    {"f16", "F16", 16, true},
    {"f8e4m3", "F8_E4M3", 8, true},
    {"f8e5m2", "F8_E5M2", 8, true},
    {"i8", "I8", 8, false},
    {"i32", "I32", 32, false},
    {"i64", "I64", 64, false},
    {"u8", "U8", 8, false},
    {"bool", "BOOL", 8, false},
    {"i4", nullptr, 4, false},
}};
}  // namespace

const DTypeInfo& dtype_info(DType dtype) { return kDTypeInfos[static_cast<size_t>(dtype)]; }

StatusOr<DType> dtype_from_safetensors(std::string_view name) {
  for (size_t i = 0; i < kDTypeInfos.size(); ++i) {
    if (kDTypeInfos[i].safetensors_name != nullptr && name == kDTypeInfos[i].safetensors_name) {
      return static_cast<DType>(i);
    }
  }
  return invalid_argument("unsupported safetensors dtype '" + std::string(name) + "'");
}

StatusOr<DType> dtype_from_string(std::string_view name) {
  if (name == "f32" || name == "fp32" || name == "float32" || name == "float") return DType::kF32;
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "f16" || name == "fp16" || name == "float16" || name == "half") return DType::kF16;
  return invalid_argument("unknown dtype '" + std::string(name) +
                          "' (expected one of f32, bf16, f16)");
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {                                               // subnormal or zero in f16
    // Scale into the subnormal range with round-to-nearest-even via float arithmetic.
    float af;
    std::memcpy(&af, &abs, sizeof(af));
    const float scaled = af * 16777216.0f;  // 2^24: f16 subnormal unit is 2^-24
    uint32_t m = static_cast<uint32_t>(scaled);
    const float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t bits = abs - ((127 - 15) << 23);
  bits += 0xfffu + ((bits >> 13) & 1u);
  return static_cast<uint16_t>(sign | (bits >> 13));
}

Status convert_to_f32(DType src_dtype, const void* src, float* dst, int64_t count) {
  switch (src_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
      return ok_status();
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(s[i]);
      return ok_status();
    }
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = f16_to_f32(s[i]);
      return ok_status();
    }
    default:
      return unimplemented(std::string("conversion from ") + dtype_name(src_dtype) + " to f32");
  }
}

Status convert_from_f32(const float* src, DType dst_dtype, void* dst, int64_t count) {
  switch (dst_dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
      return ok_status();
    case DType::kBF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) d[i] = f32_to_bf16(src[i]);
      return ok_status();
    }
    case DType::kF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < count; ++i) d[i] = f32_to_f16(src[i]);
      return ok_status();
    }
    default:
      return unimplemented(std::string("conversion from f32 to ") + dtype_name(dst_dtype));
  }
}

}  // namespace vila
