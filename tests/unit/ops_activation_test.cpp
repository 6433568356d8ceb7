// silu_mul, gelu (erf, tanh) and softmax vs plain double references.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ops/cpu/activation.h"
#include "ops/cpu/softmax.h"

namespace vila::cpu {
namespace {

std::vector<float> random_vector(int64_t n, std::mt19937& rng, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(OpsActivation, SiluMulMatchesReference) {
  std::mt19937 rng(1);
  for (auto [m, f] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {5, 4864}, {33, 4001}}) {
    std::vector<float> g = random_vector(m * f, rng, 4.0f), u = random_vector(m * f, rng, 1.0f);
    g[0] = -100.0f;  // exp overflow side
    std::vector<float> out(g.size());
    ASSERT_TRUE(silu_mul({out.data(), DType::kF32, {m, f}}, {g.data(), DType::kF32, {m, f}},
                         {u.data(), DType::kF32, {m, f}})
                    .ok());
    for (size_t i = 0; i < g.size(); ++i) {
      const double x = g[i];
      const double ref = x / (1.0 + std::exp(-x)) * u[i];
      ASSERT_NEAR(out[i], ref, 1e-6 + 1e-6 * std::fabs(ref)) << i;
    }
    // in place into gate
    ASSERT_TRUE(silu_mul({g.data(), DType::kF32, {m, f}}, {g.data(), DType::kF32, {m, f}},
                         {u.data(), DType::kF32, {m, f}})
                    .ok());
    for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], out[i]);
  }
}

TEST(OpsActivation, GeluMatchesReference) {
  std::mt19937 rng(2);
  std::vector<float> x = random_vector(7 * 10001, rng, 3.0f);
  std::vector<float> out(x.size());
  const TensorView xv{x.data(), DType::kF32, {7, 10001}};
  const TensorView ov{out.data(), DType::kF32, {7, 10001}};
  ASSERT_TRUE(gelu(ov, xv, GeluApprox::kErf).ok());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double ref = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    ASSERT_NEAR(out[i], ref, 1e-6 + 1e-6 * std::fabs(ref)) << v;
  }
  ASSERT_TRUE(gelu(ov, xv, GeluApprox::kTanh).ok());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    const double ref =
        0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    ASSERT_NEAR(out[i], ref, 1e-6 + 1e-6 * std::fabs(ref)) << v;
  }
}

TEST(OpsSoftmax, MatchesReference) {
  std::mt19937 rng(3);
  for (auto [m, n] : {std::pair<int64_t, int64_t>{1, 1}, {4, 7}, {3, 151936}, {300, 513}}) {
    std::vector<float> x = random_vector(m * n, rng, 5.0f);
    x[0] = 80.0f;  // would overflow exp without max subtraction
    if (n > 2) x[1] = -std::numeric_limits<float>::infinity();
    std::vector<float> out(x.size());
    ASSERT_TRUE(softmax({out.data(), DType::kF32, {m, n}}, {x.data(), DType::kF32, {m, n}}).ok());
    for (int64_t r = 0; r < m; ++r) {
      double mx = -1e300;
      for (int64_t i = 0; i < n; ++i) mx = std::max<double>(mx, x[r * n + i]);
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += std::exp(x[r * n + i] - mx);
      for (int64_t i = 0; i < n; ++i) {
        const double ref = std::exp(x[r * n + i] - mx) / sum;
        ASSERT_NEAR(out[r * n + i], ref, 1e-7 + 1e-5 * ref);
      }
    }
  }
}

}  // namespace
}  // namespace vila::cpu
