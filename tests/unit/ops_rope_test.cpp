// RoPE tables and rotation vs plain-loop references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/cpu/rope.h"

namespace vila::cpu {
namespace {

TEST(OpsRope, TablesMatchDoubleReference) {
  // Small positions: the fp32 angle rounding (HF's order) stays far below the tolerance.
  for (int64_t d : {2, 8, 64, 128}) {
    for (double theta : {10000.0, 1e6}) {
      std::vector<int64_t> pos = {0, 1, 2, 7, 31};
      const auto t = static_cast<int64_t>(pos.size());
      std::vector<float> c(static_cast<size_t>(t * d / 2)), s(c.size());
      ASSERT_TRUE(rope_cos_sin({c.data(), DType::kF32, {t, d / 2}},
                               {s.data(), DType::kF32, {t, d / 2}}, pos.data(), theta)
                      .ok());
      for (int64_t i = 0; i < t; ++i) {
        for (int64_t j = 0; j < d / 2; ++j) {
          const double inv_freq = 1.0 / std::pow(theta, 2.0 * static_cast<double>(j) / d);
          const double angle = static_cast<double>(pos[i]) * inv_freq;
          EXPECT_NEAR(c[i * d / 2 + j], std::cos(angle), 2e-6);
          EXPECT_NEAR(s[i * d / 2 + j], std::sin(angle), 2e-6);
        }
      }
    }
  }
}

TEST(OpsRope, TablesFollowHfFloat32Order) {
  // HF: inv_freq = 1 / theta ** (arange(0, D, 2).float() / D) in fp32; freq = float(pos) *
  // inv_freq.
  const int64_t d = 64;
  const double theta = 1e6;
  std::vector<int64_t> pos = {4095, 30000};
  std::vector<float> c(2 * d / 2), s(c.size());
  ASSERT_TRUE(rope_cos_sin({c.data(), DType::kF32, {2, d / 2}}, {s.data(), DType::kF32, {2, d / 2}},
                           pos.data(), theta)
                  .ok());
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < d / 2; ++j) {
      const float inv = 1.0f / std::pow(static_cast<float>(theta),
                                        static_cast<float>(2 * j) / static_cast<float>(d));
      const float freq = static_cast<float>(pos[i]) * inv;
      EXPECT_NEAR(c[i * d / 2 + j], std::cos(static_cast<double>(freq)), 1e-7);
      EXPECT_NEAR(s[i * d / 2 + j], std::sin(static_cast<double>(freq)), 1e-7);
    }
  }
}

TEST(OpsRope, ApplyRotatesHalves) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  for (auto [t, h, d] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 2}, {3, 5, 8}, {7, 2, 64}, {4, 14, 64}}) {
    std::vector<int64_t> pos(static_cast<size_t>(t));
    for (int64_t i = 0; i < t; ++i) pos[static_cast<size_t>(i)] = 3 * i + 1;
    std::vector<float> c(static_cast<size_t>(t * d / 2)), s(c.size());
    ASSERT_TRUE(rope_cos_sin({c.data(), DType::kF32, {t, d / 2}},
                             {s.data(), DType::kF32, {t, d / 2}}, pos.data(), 10000.0)
                    .ok());
    std::vector<float> x(static_cast<size_t>(t * h * d));
    for (float& v : x) v = dist(rng);
    const std::vector<float> x0 = x;
    ASSERT_TRUE(rope_apply({x.data(), DType::kF32, {t, h, d}}, {c.data(), DType::kF32, {t, d / 2}},
                           {s.data(), DType::kF32, {t, d / 2}})
                    .ok());
    const int64_t half = d / 2;
    for (int64_t ti = 0; ti < t; ++ti) {
      for (int64_t hi = 0; hi < h; ++hi) {
        const float* in = x0.data() + (ti * h + hi) * d;
        const float* out = x.data() + (ti * h + hi) * d;
        for (int64_t i = 0; i < d; ++i) {
          // HF: x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), rotate_half = cat(-x2, x1)
          const double cs = c[ti * half + i % half];
          const double sn = s[ti * half + i % half];
          const double rot = i < half ? -in[i + half] : in[i - half];
          EXPECT_NEAR(out[i], in[i] * cs + rot * sn, 1e-6);
        }
      }
    }
  }
}

TEST(OpsRope, RejectsOddHeadDim) {
  std::vector<float> x(6), c(3), s(3);
  EXPECT_EQ(rope_apply({x.data(), DType::kF32, {1, 2, 3}}, {c.data(), DType::kF32, {1, 1}},
                       {s.data(), DType::kF32, {1, 1}})
                .code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::cpu
