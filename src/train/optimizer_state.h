// Storage formats for optimizer states (Adam's moments): a StateTensor holds `numel` values in
// one of several formats and is read and written one block of kStateBlock values at a time, so an
// update never needs an fp32 copy of the whole state (decode block -> update in fp32 -> encode).
//
// Formats (bytes per value):
//   kF32      4       exact.
//   kBF16     2       round to nearest even (f32_to_bf16). Note: a slowly decaying second moment
//                     (v *= 0.999) changes by less than half a bf16 ulp (2^-9..2^-8 relative)
//                     per step and stalls; kept because it is what bf16-state trainers do.
//   kI8Block  1 + 4/128   8-bit codes on sqrt-companded values, one fp32 absmax scale per block
//                     of 128 values:
//     signed moment (exp_avg):       r = sign(x) sqrt|x|, s = max|r|, q = round(127 r / s) in
//                                    [-127, 127] (int8), r' = s q / 127, x' = sign(r') r'^2;
//                                    |r - r'| <= s / 254.
//     non-negative moment (exp_avg_sq): r = sqrt(x), s = max r, q = round(255 r / s) in [0, 255]
//                                    (uint8), q = max(q, 1) when x > 0, x' = (s q / 255)^2;
//                                    |r - r'| <= s / 510 (s / 255 where q was raised to 1).
//     Why companding: Adam divides m by sqrt(v), and both moments span the dynamic range of |g|
//     (v its square) within a block; a linear 8-bit grid flushes the small ones. Measured on the
//     200-step quadratic of tests/train/optimizer_test.cpp, a linear int8 m left parameters up
//     to 1.2 away from the fp32 run (an element with a small |m| and a tiny sqrt(v) gets m's
//     quantisation error divided by sqrt(v)); sqrt companding brings that to 0.19 (fourth root:
//     0.14, not worth the pow()). v: a uniform grid on sqrt(v) gives the denominator a uniform
//     error, and v >= 0, so a sign bit would waste half the codes. A positive v is never stored
//     as 0: m / (0 + eps) would be a huge step; rounding up to the first code only shrinks it.
//     Known limit: round-to-nearest re-encoding each step can stall slow changes (v *= 0.999 is
//     below half a code near the top of a block); stochastic rounding would fix it in expectation.
//     A block holding a non-finite value gets a NaN scale, so it decodes to NaN (never hidden).
//   Next formats (slots reserved, Unimplemented today):
//   kI8Dynamic   bitsandbytes' 8-bit optimizers: block-wise dynamic tree quantisation (a sign bit,
//                a unary exponent and a linear fraction in one byte; absmax per block of 2048).
//   kF8E4M3Dre   COAT's FP8 optimizer states: E4M3 codes with per-group scales after dynamic
//                range expansion (x -> sign(x) |x|^k with k chosen per group so the group fills
//                the E4M3 range), inverted on decode.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::train {

enum class StateFormat { kF32, kBF16, kI8Block, kI8Dynamic, kF8E4M3Dre };
// "f32" | "bf16" | "i8_block" | "i8_dynamic" | "f8e4m3_dre".
const char* state_format_name(StateFormat format);
// Also accepts "fp32" / "float32", "int8". InvalidArgument naming the value if unknown.
StatusOr<StateFormat> parse_state_format(std::string_view name);
// OK for the formats implemented; Unimplemented naming the format (and what it is) otherwise.
Status check_state_format(StateFormat format);

// Values per block: the unit of decode/encode and of one kI8Block scale.
constexpr int64_t kStateBlock = 128;
constexpr float kI8SignedLevels = 127.0f;    // int8 codes -127..127
constexpr float kU8UnsignedLevels = 255.0f;  // uint8 codes 0..255

// Which moment a tensor holds: decides the kI8Block code (see above).
enum class MomentKind { kSigned, kNonNegative };

// Bytes a format takes per stored value, scales included (kI8Block: 1 + 4 / 128).
double state_bytes_per_value(StateFormat format);

class StateTensor {
 public:
  // `numel` zeros in `format`. InvalidArgument for numel <= 0; Unimplemented formats as above.
  static StatusOr<StateTensor> create(StateFormat format, MomentKind kind, int64_t numel);

  StateFormat format() const { return format_; }
  MomentKind kind() const { return kind_; }
  int64_t numel() const { return numel_; }
  int64_t num_blocks() const { return (numel_ + kStateBlock - 1) / kStateBlock; }
  // Values in block b: kStateBlock except for the last block.
  int64_t block_len(int64_t b) const;

  // out (block_len(b)) fp32 <- block b.
  void decode_block(int64_t b, float* out) const;
  // block b <- in (block_len(b)) fp32, rounding as the format says.
  void encode_block(int64_t b, const float* in);
  // All values as fp32 (tests, debugging; allocates numel floats).
  std::vector<float> to_f32() const;

  // Stored form, for serialization: codes as `code_dtype()` (F32, BF16, I8 or U8), numel values;
  // scales (fp32, num_blocks) only for kI8Block, else empty.
  DType code_dtype() const;
  const std::vector<uint8_t>& code_bytes() const { return codes_; }
  const std::vector<float>& scales() const { return scales_; }
  // Replaces the stored form with bytes of the same size (bit-exact restore). InvalidArgument
  // naming the expected and actual sizes on a mismatch.
  Status restore(const uint8_t* codes, size_t code_nbytes, const float* scales, size_t n_scales);

  int64_t nbytes() const;  // codes + scales

 private:
  StateFormat format_ = StateFormat::kF32;
  MomentKind kind_ = MomentKind::kSigned;
  int64_t numel_ = 0;
  std::vector<uint8_t> codes_;  // (numel) values in code_dtype()
  std::vector<float> scales_;   // (num_blocks) fp32, kI8Block only
};

}  // namespace vila::train
