#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace vila {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Reference f16 decoding straight from the IEEE 754 definition.
double f16_reference(uint16_t h) {
  const int sign = (h & 0x8000) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31)
    return mant ? std::numeric_limits<double>::quiet_NaN()
                : sign * std::numeric_limits<double>::infinity();
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(DType, InfoAndNames) {
  EXPECT_EQ(dtype_bytes(DType::kF32, 3), 12);
  EXPECT_EQ(dtype_bytes(DType::kBF16, 3), 6);
  EXPECT_EQ(dtype_bytes(DType::kI4Packed, 3), 2);
  EXPECT_EQ(dtype_bytes(DType::kBool, 5), 5);
  for (int i = 0; i < static_cast<int>(DType::kCount); ++i) {
    const auto dtype = static_cast<DType>(i);
    const char* st = dtype_info(dtype).safetensors_name;
    if (st == nullptr) continue;
    auto back = dtype_from_safetensors(st);
    ASSERT_TRUE(back.ok()) << st;
    EXPECT_EQ(*back, dtype);
  }
  EXPECT_FALSE(dtype_from_safetensors("F64").ok());
  EXPECT_FALSE(dtype_from_safetensors("bf16").ok());  // case matters
  EXPECT_EQ(*dtype_from_string("float32"), DType::kF32);
  EXPECT_EQ(*dtype_from_string("bfloat16"), DType::kBF16);
  EXPECT_EQ(*dtype_from_string("half"), DType::kF16);
  EXPECT_EQ(dtype_from_string("f64").status().code(), StatusCode::kInvalidArgument);
}

TEST(DType, Bf16RoundToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // Exactly halfway between 1.0 (even) and 1 + 2^-7: to even.
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // Halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to even.
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  // Just above halfway rounds up.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  const uint16_t nan = f32_to_bf16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(bf16_to_f32(nan)));
  // A signalling NaN whose payload sits in the dropped bits must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bits_of(bf16_to_f32(0x8000)), 0x80000000u);
}

TEST(DType, Bf16ExhaustiveRoundTripAndMidpoints) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << h;
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), h) << h;
  }
  // Every midpoint between neighbours (exact in f32) rounds to the even one; one ulp off
  // the midpoint rounds to the nearer one.
  for (uint32_t h = 0; h < 0x7f80; ++h) {
    const float lo = bf16_to_f32(static_cast<uint16_t>(h));
    const float hi = bf16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = from_bits((bits_of(lo) + bits_of(hi)) / 2);
    ASSERT_EQ(f32_to_bf16(mid), (h & 1) ? h + 1 : h) << h;
    ASSERT_EQ(f32_to_bf16(std::nextafter(mid, 0.0f)), h) << h;
    ASSERT_EQ(f32_to_bf16(std::nextafter(mid, hi)), h + 1) << h;
  }
}

TEST(DType, F16SpecialValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway to 2^16: ties to even = inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x3ff, 0);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfc01)));
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  // Subnormals.
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie: to even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // tie: to even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25) * 1.0001f), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.0f, -30)), 0x8000);    // keeps the sign
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
  // Normal range ties.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(DType, F16ExhaustiveDecodeEncode) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto h16 = static_cast<uint16_t>(h);
    const float f = f16_to_f32(h16);
    const double ref = f16_reference(h16);
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(f)) << h;
      const uint16_t back = f32_to_f16(f);
      EXPECT_EQ(back & 0x7c00, 0x7c00) << h;
      EXPECT_NE(back & 0x3ff, 0) << h;
      EXPECT_EQ(back & 0x8000, h & 0x8000) << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), ref) << h;
    ASSERT_EQ(f32_to_f16(f), h16) << h;  // identity for every non-NaN pattern
  }
  // Midpoints between neighbours, including 65504 -> inf.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = f16_to_f32(static_cast<uint16_t>(h));
    const float hi = h + 1 == 0x7c00 ? 65536.0f : f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = (lo + hi) / 2;  // exact: f16 has far fewer mantissa bits than f32
    ASSERT_EQ(f32_to_f16(mid), (h & 1) ? h + 1 : h) << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, 0.0f)), h) << h;
    ASSERT_EQ(f32_to_f16(std::nextafter(mid, hi)), h + 1) << h;
    ASSERT_EQ(f32_to_f16(-mid), ((h & 1) ? h + 1 : h) | 0x8000) << h;
  }
}

TEST(DType, BulkConversions) {
  const std::vector<float> src = {0.0f, -1.5f, 3.140625f, 65504.0f, 1e-7f};
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    std::vector<uint8_t> packed(static_cast<size_t>(dtype_bytes(dtype, 5)));
    ASSERT_TRUE(convert_from_f32(src.data(), dtype, packed.data(), 5).ok());
    std::vector<float> back(5);
    ASSERT_TRUE(convert_to_f32(dtype, packed.data(), back.data(), 5).ok());
    for (size_t i = 0; i < src.size(); ++i) {
      float expected = src[i];
      if (dtype == DType::kBF16) expected = bf16_to_f32(f32_to_bf16(src[i]));
      if (dtype == DType::kF16) expected = f16_to_f32(f32_to_f16(src[i]));
      EXPECT_EQ(back[i], expected) << dtype_name(dtype) << " " << i;
    }
  }
  float out = 0;
  const int8_t i8 = 1;
  EXPECT_EQ(convert_to_f32(DType::kI8, &i8, &out, 1).code(), StatusCode::kUnimplemented);
  EXPECT_EQ(convert_from_f32(&out, DType::kI32, &out, 1).code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace vila
