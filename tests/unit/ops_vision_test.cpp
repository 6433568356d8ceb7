// Vision ops (non-causal attention, patch embedding, area resize) vs plain-loop double references
// on random odd shapes, at both SIMD levels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/attention_full.h"
#include "ops/cpu/patch_embed.h"
#include "ops/cpu/resize_area.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {
namespace {

class VisionOpsLevels : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override { simd_set_level(GetParam()); }
  void TearDown() override { simd_set_level(simd_detect()); }
};

std::vector<float> random_vec(size_t n, std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST_P(VisionOpsLevels, AttentionFullMatchesReference) {
  struct Case {
    int64_t t, s, h, d;
  };
  const Case cases[] = {
      {1, 1, 1, 1}, {7, 9, 3, 5}, {33, 33, 2, 72}, {65, 65, 4, 16}, {5, 130, 1, 3}};
  std::mt19937 rng(3);
  for (const Case& tc : cases) {
    auto q = random_vec(static_cast<size_t>(tc.t * tc.h * tc.d), rng, 1.5f);
    auto k = random_vec(static_cast<size_t>(tc.s * tc.h * tc.d), rng, 1.5f);
    auto v = random_vec(k.size(), rng);
    std::vector<float> out(q.size(), -3.0f);
    const auto scale = static_cast<float>(std::pow(static_cast<double>(tc.d), -0.5));
    const Status st = attention_full({out.data(), DType::kF32, {tc.t, tc.h, tc.d}},
                                     {q.data(), DType::kF32, {tc.t, tc.h, tc.d}},
                                     {k.data(), DType::kF32, {tc.s, tc.h, tc.d}},
                                     {v.data(), DType::kF32, {tc.s, tc.h, tc.d}}, scale);
    ASSERT_TRUE(st.ok()) << st.to_string();
    for (int64_t t = 0; t < tc.t; ++t) {
      for (int64_t h = 0; h < tc.h; ++h) {
        std::vector<double> p(static_cast<size_t>(tc.s));
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j < tc.s; ++j) {
          double dot = 0.0;
          for (int64_t i = 0; i < tc.d; ++i) {
            dot += static_cast<double>(q[(t * tc.h + h) * tc.d + i]) * k[(j * tc.h + h) * tc.d + i];
          }
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < tc.d; ++i) {
          double o = 0.0;
          for (int64_t j = 0; j < tc.s; ++j) o += p[j] / sum * v[(j * tc.h + h) * tc.d + i];
          ASSERT_NEAR(out[(t * tc.h + h) * tc.d + i], o, 2e-5)
              << "T=" << tc.t << " S=" << tc.s << " H=" << tc.h << " D=" << tc.d;
        }
      }
    }
  }
}

TEST(VisionOps, AttentionFullRejectsBadShapes) {
  std::vector<float> a(24), b(24);
  const Status st =
      attention_full({a.data(), DType::kF32, {2, 3, 4}}, {a.data(), DType::kF32, {2, 3, 4}},
                     {b.data(), DType::kF32, {2, 2, 6}}, {b.data(), DType::kF32, {2, 2, 6}}, 1.0f);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("attention_full"), std::string::npos);
}

TEST_P(VisionOpsLevels, PatchEmbedMatchesConvReference) {
  struct Case {
    int64_t n, cin, hp, wp, c, p;
    DType wdtype;
  };
  const Case cases[] = {{2, 3, 15, 15, 7, 5, DType::kF32},
                        {1, 3, 17, 13, 9, 4, DType::kBF16},  // trailing pixels ignored
                        {3, 2, 6, 6, 5, 3, DType::kF16},
                        {1, 3, 28, 28, 33, 14, DType::kF32}};
  std::mt19937 rng(5);
  for (const Case& tc : cases) {
    auto px = random_vec(static_cast<size_t>(tc.n * tc.cin * tc.hp * tc.wp), rng);
    auto wf = random_vec(static_cast<size_t>(tc.c * tc.cin * tc.p * tc.p), rng, 0.3f);
    auto bias = random_vec(static_cast<size_t>(tc.c), rng);
    std::vector<uint16_t> wh(wf.size());
    if (tc.wdtype != DType::kF32) {
      for (size_t i = 0; i < wf.size(); ++i) {
        wh[i] = tc.wdtype == DType::kBF16 ? f32_to_bf16(wf[i]) : f32_to_f16(wf[i]);
        wf[i] = tc.wdtype == DType::kBF16 ? bf16_to_f32(wh[i]) : f16_to_f32(wh[i]);
      }
    }
    void* wdata = tc.wdtype == DType::kF32 ? static_cast<void*>(wf.data()) : wh.data();
    const int64_t gh = tc.hp / tc.p, gw = tc.wp / tc.p;
    std::vector<float> out(static_cast<size_t>(tc.n * gh * gw * tc.c));
    const Status st = patch_embed({out.data(), DType::kF32, {tc.n, gh * gw, tc.c}},
                                  {px.data(), DType::kF32, {tc.n, tc.cin, tc.hp, tc.wp}},
                                  {wdata, tc.wdtype, {tc.c, tc.cin, tc.p, tc.p}},
                                  {bias.data(), DType::kF32, {tc.c}});
    ASSERT_TRUE(st.ok()) << st.to_string();
    for (int64_t n = 0; n < tc.n; ++n) {
      for (int64_t oy = 0; oy < gh; ++oy) {
        for (int64_t ox = 0; ox < gw; ++ox) {
          for (int64_t co = 0; co < tc.c; ++co) {
            double acc = bias[co];
            for (int64_t ci = 0; ci < tc.cin; ++ci) {
              for (int64_t ky = 0; ky < tc.p; ++ky) {
                for (int64_t kx = 0; kx < tc.p; ++kx) {
                  acc += static_cast<double>(wf[((co * tc.cin + ci) * tc.p + ky) * tc.p + kx]) *
                         px[((n * tc.cin + ci) * tc.hp + oy * tc.p + ky) * tc.wp + ox * tc.p + kx];
                }
              }
            }
            ASSERT_NEAR(out[((n * gh + oy) * gw + ox) * tc.c + co], acc, 1e-4)
                << "case p=" << tc.p << " n " << n << " patch " << oy << "," << ox;
          }
        }
      }
    }
  }
}

// torch adaptive_avg_pool2d windows, computed independently with floating floor/ceil.
TEST(VisionOps, ResizeAreaMatchesAdaptiveAvgPool) {
  struct Case {
    int64_t hi, wi, ho, wo, c;
  };
  const Case cases[] = {{64, 64, 96, 96, 3}, {32, 32, 96, 96, 2},  {5, 7, 3, 4, 3},
                        {7, 3, 4, 8, 1},     {64, 32, 160, 96, 2}, {96, 96, 96, 96, 5}};
  std::mt19937 rng(9);
  for (const Case& tc : cases) {
    auto in = random_vec(static_cast<size_t>(tc.hi * tc.wi * tc.c), rng);
    std::vector<float> out(static_cast<size_t>(tc.ho * tc.wo * tc.c));
    const Status st = resize_area({out.data(), DType::kF32, {tc.ho, tc.wo, tc.c}},
                                  {in.data(), DType::kF32, {tc.hi, tc.wi, tc.c}});
    ASSERT_TRUE(st.ok()) << st.to_string();
    for (int64_t oh = 0; oh < tc.ho; ++oh) {
      const auto h0 = static_cast<int64_t>(std::floor(double(oh) * tc.hi / tc.ho));
      const auto h1 = static_cast<int64_t>(std::ceil(double(oh + 1) * tc.hi / tc.ho));
      for (int64_t ow = 0; ow < tc.wo; ++ow) {
        const auto w0 = static_cast<int64_t>(std::floor(double(ow) * tc.wi / tc.wo));
        const auto w1 = static_cast<int64_t>(std::ceil(double(ow + 1) * tc.wi / tc.wo));
        for (int64_t ch = 0; ch < tc.c; ++ch) {
          double sum = 0.0;
          for (int64_t y = h0; y < h1; ++y) {
            for (int64_t x = w0; x < w1; ++x) sum += in[(y * tc.wi + x) * tc.c + ch];
          }
          const double ref = sum / double((h1 - h0) * (w1 - w0));
          ASSERT_NEAR(out[(oh * tc.wo + ow) * tc.c + ch], ref, 1e-6)
              << tc.hi << "x" << tc.wi << "->" << tc.ho << "x" << tc.wo << " at " << oh << ","
              << ow;
        }
      }
    }
    if (tc.ho % tc.hi == 0 && tc.wo % tc.wi == 0) {  // integer factors replicate bit-exactly
      const int64_t fy = tc.ho / tc.hi, fx = tc.wo / tc.wi;
      for (int64_t oh = 0; oh < tc.ho; ++oh) {
        for (int64_t ow = 0; ow < tc.wo; ++ow) {
          for (int64_t ch = 0; ch < tc.c; ++ch) {
            ASSERT_EQ(out[(oh * tc.wo + ow) * tc.c + ch],
                      in[((oh / fy) * tc.wi + ow / fx) * tc.c + ch]);
          }
        }
      }
    }
  }
  // 64 -> 96: window of output 1 is [0, 2) with floor(96/96)=... spot-check window bounds.
  EXPECT_EQ(area_window_begin(1, 64, 96), 0);
  EXPECT_EQ(area_window_end(1, 64, 96), 2);
  EXPECT_EQ(area_window_begin(2, 64, 96), 1);
  EXPECT_EQ(area_window_end(2, 64, 96), 2);
}

INSTANTIATE_TEST_SUITE_P(Levels, VisionOpsLevels,
                         ::testing::Values(SimdLevel::kScalar, SimdLevel::kAvx2),
                         [](const auto& info) { return std::string(simd_level_name(info.param)); });

}  // namespace
}  // namespace vila::cpu
