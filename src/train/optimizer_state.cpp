// Optimizer state storage formats: block-wise decode / encode (see optimizer_state.h for the math).
#include "train/optimizer_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace vila::train {
namespace {

constexpr int64_t kF32Bytes = 4;
constexpr int64_t kBF16Bytes = 2;
constexpr int64_t kI8Bytes = 1;

int64_t code_bytes_per_value(StateFormat format) {
  switch (format) {
    case StateFormat::kF32:
      return kF32Bytes;
    case StateFormat::kBF16:
      return kBF16Bytes;
    default:
      return kI8Bytes;
  }
}

bool all_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return false;
  }
  return true;
}

// Signed sqrt companding: r = sign(x) sqrt(|x|), and back x = sign(r) r^2.
float compand(float x) { return std::copysign(std::sqrt(std::fabs(x)), x); }
float expand(float r) { return std::copysign(r * r, r); }

// Signed int8 on r = compand(x), absmax scale: q = round(127 r / s), s = max |r|.

float encode_signed_i8(const float* in, int64_t n, int8_t* q) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s = std::max(s, std::fabs(compand(in[i])));
  if (s == 0.0f) {
    std::fill(q, q + n, int8_t{0});
    return 0.0f;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float c = std::nearbyint(compand(in[i]) / s * kI8SignedLevels);
    q[i] = static_cast<int8_t>(std::clamp(c, -kI8SignedLevels, kI8SignedLevels));
  }
  return s;
}

// Unsigned uint8 on sqrt(x), x >= 0 (negative inputs count as 0): q = round(255 sqrt(x) / s),
// at least 1 for x > 0.
float encode_sqrt_u8(const float* in, int64_t n, uint8_t* q) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s = std::max(s, std::sqrt(std::max(in[i], 0.0f)));
  if (s == 0.0f) {
    std::fill(q, q + n, uint8_t{0});
    return 0.0f;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float x = std::max(in[i], 0.0f);
    float c = std::nearbyint(std::sqrt(x) / s * kU8UnsignedLevels);
    c = std::clamp(c, 0.0f, kU8UnsignedLevels);
    if (x > 0.0f && c == 0.0f) c = 1.0f;
    q[i] = static_cast<uint8_t>(c);
  }
  return s;
}

}  // namespace

const char* state_format_name(StateFormat format) {
  switch (format) {
    case StateFormat::kF32:
      return "f32";
    case StateFormat::kBF16:
      return "bf16";
    case StateFormat::kI8Block:
      return "i8_block";
    case StateFormat::kI8Dynamic:
      return "i8_dynamic";
    case StateFormat::kF8E4M3Dre:
      return "f8e4m3_dre";
  }
  return "?";
}

StatusOr<StateFormat> parse_state_format(std::string_view name) {
  if (name == "f32" || name == "fp32" || name == "float32") return StateFormat::kF32;
  if (name == "bf16" || name == "bfloat16") return StateFormat::kBF16;
  if (name == "i8_block" || name == "int8") return StateFormat::kI8Block;
  if (name == "i8_dynamic") return StateFormat::kI8Dynamic;
  if (name == "f8e4m3_dre") return StateFormat::kF8E4M3Dre;
  return invalid_argument("unknown optimizer state format '" + std::string(name) +
                          "' (expected f32, bf16, i8_block, i8_dynamic or f8e4m3_dre)");
}

Status check_state_format(StateFormat format) {
  switch (format) {
    case StateFormat::kF32:
    case StateFormat::kBF16:
    case StateFormat::kI8Block:
      return ok_status();
    case StateFormat::kI8Dynamic:
      return unimplemented(
          "optimizer state format i8_dynamic (bitsandbytes dynamic tree quantisation) is not "
          "implemented yet; use i8_block");
    case StateFormat::kF8E4M3Dre:
      return unimplemented(
          "optimizer state format f8e4m3_dre (COAT FP8 with dynamic range expansion) is not "
          "implemented yet; use i8_block or bf16");
  }
  return invalid_argument("optimizer state format " + std::to_string(static_cast<int>(format)) +
                          " is not a known format");
}

double state_bytes_per_value(StateFormat format) {
  const double codes = static_cast<double>(code_bytes_per_value(format));
  if (format == StateFormat::kI8Block) return codes + 4.0 / static_cast<double>(kStateBlock);
  return codes;
}

StatusOr<StateTensor> StateTensor::create(StateFormat format, MomentKind kind, int64_t numel) {
  VILA_RETURN_IF_ERROR(check_state_format(format));
  if (numel <= 0) {
    return invalid_argument("optimizer state: numel must be > 0, got " + std::to_string(numel));
  }
  StateTensor t;
  t.format_ = format;
  t.kind_ = kind;
  t.numel_ = numel;
  // Zero bytes are 0.0 in f32 and bf16, and code 0 with scale 0 in kI8Block.
  t.codes_.assign(static_cast<size_t>(numel * code_bytes_per_value(format)), 0);
  if (format == StateFormat::kI8Block) t.scales_.assign(static_cast<size_t>(t.num_blocks()), 0.0f);
  return t;
}

int64_t StateTensor::block_len(int64_t b) const {
  return std::min(kStateBlock, numel_ - b * kStateBlock);
}

void StateTensor::decode_block(int64_t b, float* out) const {
  const int64_t n = block_len(b);
  const int64_t first = b * kStateBlock;
  switch (format_) {
    case StateFormat::kF32:
      std::memcpy(out, codes_.data() + first * kF32Bytes, static_cast<size_t>(n * kF32Bytes));
      return;
    case StateFormat::kBF16: {
      const uint8_t* src = codes_.data() + first * kBF16Bytes;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + i * kBF16Bytes, sizeof(h));
        out[i] = bf16_to_f32(h);
      }
      return;
    }
    case StateFormat::kI8Block: {
      const float s = scales_[static_cast<size_t>(b)];
      const uint8_t* src = codes_.data() + first;
      if (kind_ == MomentKind::kSigned) {
        for (int64_t i = 0; i < n; ++i) {
          out[i] = expand(s * static_cast<float>(static_cast<int8_t>(src[i])) / kI8SignedLevels);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const float r = s * static_cast<float>(src[i]) / kU8UnsignedLevels;
          out[i] = r * r;
        }
      }
      return;
    }
    default:
      std::fill(out, out + n, std::numeric_limits<float>::quiet_NaN());  // never created
  }
}

void StateTensor::encode_block(int64_t b, const float* in) {
  const int64_t n = block_len(b);
  const int64_t first = b * kStateBlock;
  switch (format_) {
    case StateFormat::kF32:
      std::memcpy(codes_.data() + first * kF32Bytes, in, static_cast<size_t>(n * kF32Bytes));
      return;
    case StateFormat::kBF16: {
      uint8_t* dst = codes_.data() + first * kBF16Bytes;
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(in[i]);
        std::memcpy(dst + i * kBF16Bytes, &h, sizeof(h));
      }
      return;
    }
    case StateFormat::kI8Block: {
      uint8_t* dst = codes_.data() + first;
      float& scale = scales_[static_cast<size_t>(b)];
      if (!all_finite(in, n)) {
        std::fill(dst, dst + n, uint8_t{0});
        scale = std::numeric_limits<float>::quiet_NaN();
        return;
      }
      if (kind_ == MomentKind::kSigned) {
        scale = encode_signed_i8(in, n, reinterpret_cast<int8_t*>(dst));
      } else {
        scale = encode_sqrt_u8(in, n, dst);
      }
      return;
    }
    default:
      return;  // never created
  }
}

std::vector<float> StateTensor::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel_));
  for (int64_t b = 0; b < num_blocks(); ++b) decode_block(b, out.data() + b * kStateBlock);
  return out;
}

DType StateTensor::code_dtype() const {
  switch (format_) {
    case StateFormat::kF32:
      return DType::kF32;
    case StateFormat::kBF16:
      return DType::kBF16;
    default:
      return kind_ == MomentKind::kSigned ? DType::kI8 : DType::kU8;
  }
}

Status StateTensor::restore(const uint8_t* codes, size_t code_nbytes, const float* scales,
                            size_t n_scales) {
  if (code_nbytes != codes_.size()) {
    return invalid_argument("optimizer state: expected " + std::to_string(codes_.size()) +
                            " bytes of codes, got " + std::to_string(code_nbytes));
  }
  if (n_scales != scales_.size()) {
    return invalid_argument("optimizer state: expected " + std::to_string(scales_.size()) +
                            " scales, got " + std::to_string(n_scales));
  }
  if (code_nbytes > 0) std::memcpy(codes_.data(), codes, code_nbytes);
  if (n_scales > 0) std::memcpy(scales_.data(), scales, n_scales * sizeof(float));
  return ok_status();
}

int64_t StateTensor::nbytes() const {
  return static_cast<int64_t>(codes_.size() + scales_.size() * sizeof(float));
}

}  // namespace vila::train
