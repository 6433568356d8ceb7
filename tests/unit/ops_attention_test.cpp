// Causal GQA attention over a cache vs a plain-loop double reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ops/cpu/attention.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {
namespace {

struct AttnCase {
  int64_t t, h, h_kv, d, p0, extra_cache;  // extra_cache: unused cache rows after p0 + t
};

class AttentionLevels : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override { simd_set_level(GetParam()); }
  void TearDown() override { simd_set_level(simd_detect()); }
};

TEST_P(AttentionLevels, MatchesReference) {
  const AttnCase cases[] = {{1, 1, 1, 1, 0, 0},    {1, 4, 2, 8, 5, 3},    {7, 6, 3, 16, 0, 0},
                            {5, 14, 2, 64, 11, 1}, {33, 4, 1, 32, 3, 0},  {3, 8, 8, 7, 2, 5},
                            {64, 2, 1, 128, 0, 0}, {1, 14, 2, 64, 300, 0}};
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  for (const AttnCase& tc : cases) {
    const int64_t s_len = tc.p0 + tc.t + tc.extra_cache;
    std::vector<float> q(static_cast<size_t>(tc.t * tc.h * tc.d));
    std::vector<float> k(static_cast<size_t>(s_len * tc.h_kv * tc.d));
    std::vector<float> v(k.size());
    for (float& x : q) x = dist(rng);
    for (float& x : k) x = dist(rng);
    for (float& x : v) x = dist(rng);
    // Garbage past p0 + t must not be read.
    for (int64_t i = (tc.p0 + tc.t) * tc.h_kv * tc.d; i < s_len * tc.h_kv * tc.d; ++i) {
      k[static_cast<size_t>(i)] = 1e30f;
      v[static_cast<size_t>(i)] = std::nanf("");
    }
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(tc.d)));
    std::vector<float> out(q.size(), -7.0f);
    const Status st = attention_causal(
        {out.data(), DType::kF32, {tc.t, tc.h, tc.d}}, {q.data(), DType::kF32, {tc.t, tc.h, tc.d}},
        {k.data(), DType::kF32, {s_len, tc.h_kv, tc.d}},
        {v.data(), DType::kF32, {s_len, tc.h_kv, tc.d}}, tc.p0, scale);
    ASSERT_TRUE(st.ok()) << st.to_string();

    const int64_t group = tc.h / tc.h_kv;
    for (int64_t t = 0; t < tc.t; ++t) {
      for (int64_t h = 0; h < tc.h; ++h) {
        const int64_t g = h / group;
        const int64_t n_keys = tc.p0 + t + 1;
        std::vector<double> p(static_cast<size_t>(n_keys));
        double mx = -1e300;
        for (int64_t j = 0; j < n_keys; ++j) {
          double s = 0.0;
          for (int64_t i = 0; i < tc.d; ++i) {
            s +=
                static_cast<double>(q[(t * tc.h + h) * tc.d + i]) * k[(j * tc.h_kv + g) * tc.d + i];
          }
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0.0;
        for (double& x : p) sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < tc.d; ++i) {
          double o = 0.0;
          for (int64_t j = 0; j < n_keys; ++j) o += p[j] / sum * v[(j * tc.h_kv + g) * tc.d + i];
          ASSERT_NEAR(out[(t * tc.h + h) * tc.d + i], o, 2e-5)
              << "t=" << tc.t << " h=" << tc.h << " hkv=" << tc.h_kv << " d=" << tc.d
              << " p0=" << tc.p0 << " at t " << t << " head " << h << " i " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, AttentionLevels,
                         ::testing::Values(SimdLevel::kScalar, SimdLevel::kAvx2),
                         [](const auto& info) { return std::string(simd_level_name(info.param)); });

TEST(OpsAttention, RejectsBadGroupingAndOverflow) {
  std::vector<float> q(3 * 4), k(8 * 2 * 4), v(k.size()), out(q.size());
  // H = 3 not a multiple of Hkv = 2
  EXPECT_EQ(attention_causal({out.data(), DType::kF32, {1, 3, 4}},
                             {q.data(), DType::kF32, {1, 3, 4}}, {k.data(), DType::kF32, {8, 2, 4}},
                             {v.data(), DType::kF32, {8, 2, 4}}, 0, 0.5f)
                .code(),
            StatusCode::kInvalidArgument);
  // positions past the cache
  std::vector<float> q2(2 * 4), out2(q2.size());
  EXPECT_EQ(attention_causal(
                {out2.data(), DType::kF32, {1, 2, 4}}, {q2.data(), DType::kF32, {1, 2, 4}},
                {k.data(), DType::kF32, {8, 2, 4}}, {v.data(), DType::kF32, {8, 2, 4}}, 8, 0.5f)
                .code(),
            StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace vila::cpu
