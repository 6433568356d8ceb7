// rms_norm and layer_norm vs plain-loop double references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/norm.h"

namespace vila::cpu {
namespace {

std::vector<float> random_vector(int64_t n, std::mt19937& rng, float mean = 0.0f,
                                 float stddev = 1.0f) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Stores `values` in `dtype` and returns the rounded values back (what the op will see).
std::vector<float> store(const std::vector<float>& values, DType dtype,
                         std::vector<uint8_t>& bytes) {
  const auto n = static_cast<int64_t>(values.size());
  bytes.resize(static_cast<size_t>(dtype_bytes(dtype, n)));
  EXPECT_TRUE(convert_from_f32(values.data(), dtype, bytes.data(), n).ok());
  std::vector<float> rounded(values.size());
  EXPECT_TRUE(convert_to_f32(dtype, bytes.data(), rounded.data(), n).ok());
  return rounded;
}

struct RowsCase {
  int64_t rows, cols;
};
const RowsCase kCases[] = {{1, 1}, {3, 7}, {5, 896}, {2, 1000}, {70, 1024}, {1, 4097}};

TEST(OpsNorm, RmsNormMatchesReference) {
  std::mt19937 rng(42);
  for (const RowsCase& tc : kCases) {
    for (DType wdt : {DType::kF32, DType::kBF16, DType::kF16}) {
      for (bool in_place : {false, true}) {
        std::vector<float> x = random_vector(tc.rows * tc.cols, rng, 0.3f, 2.0f);
        std::vector<uint8_t> w_bytes;
        const std::vector<float> w = store(random_vector(tc.cols, rng, 1.0f, 0.2f), wdt, w_bytes);
        const float eps = 1e-6f;
        std::vector<double> ref(x.size());
        for (int64_t r = 0; r < tc.rows; ++r) {
          double ss = 0.0;
          for (int64_t i = 0; i < tc.cols; ++i)
            ss += static_cast<double>(x[r * tc.cols + i]) * x[r * tc.cols + i];
          const double inv = 1.0 / std::sqrt(ss / static_cast<double>(tc.cols) + eps);
          for (int64_t i = 0; i < tc.cols; ++i)
            ref[r * tc.cols + i] = w[i] * (x[r * tc.cols + i] * inv);
        }
        std::vector<float> out(x.size());
        float* dst = in_place ? x.data() : out.data();
        const Status s = rms_norm({dst, DType::kF32, {tc.rows, tc.cols}},
                                  {x.data(), DType::kF32, {tc.rows, tc.cols}},
                                  {w_bytes.data(), wdt, {tc.cols}}, eps);
        ASSERT_TRUE(s.ok()) << s.to_string();
        for (size_t i = 0; i < ref.size(); ++i) {
          ASSERT_NEAR(dst[i], ref[i], 1e-6 + 2e-6 * std::fabs(ref[i]))
              << tc.rows << "x" << tc.cols << " " << dtype_name(wdt) << " at " << i;
        }
      }
    }
  }
}

TEST(OpsNorm, LayerNormMatchesReference) {
  std::mt19937 rng(43);
  for (const RowsCase& tc : kCases) {
    for (DType wdt : {DType::kF32, DType::kBF16}) {
      for (bool with_bias : {false, true}) {
        std::vector<float> x = random_vector(tc.rows * tc.cols, rng, 1.5f, 3.0f);
        std::vector<uint8_t> w_bytes, b_bytes;
        const std::vector<float> w = store(random_vector(tc.cols, rng, 1.0f, 0.2f), wdt, w_bytes);
        const std::vector<float> b = store(random_vector(tc.cols, rng, 0.0f, 0.5f), wdt, b_bytes);
        const float eps = 1e-5f;
        std::vector<double> ref(x.size());
        for (int64_t r = 0; r < tc.rows; ++r) {
          const float* xr = x.data() + r * tc.cols;
          double mean = 0.0;
          for (int64_t i = 0; i < tc.cols; ++i) mean += xr[i];
          mean /= static_cast<double>(tc.cols);
          double var = 0.0;
          for (int64_t i = 0; i < tc.cols; ++i) var += (xr[i] - mean) * (xr[i] - mean);
          var /= static_cast<double>(tc.cols);
          for (int64_t i = 0; i < tc.cols; ++i) {
            ref[r * tc.cols + i] =
                (xr[i] - mean) / std::sqrt(var + eps) * w[i] + (with_bias ? b[i] : 0.0);
          }
        }
        std::vector<float> out(x.size());
        const Status s = layer_norm(
            {out.data(), DType::kF32, {tc.rows, tc.cols}},
            {x.data(), DType::kF32, {tc.rows, tc.cols}}, {w_bytes.data(), wdt, {tc.cols}},
            with_bias ? TensorView{b_bytes.data(), wdt, {tc.cols}} : TensorView{}, eps);
        ASSERT_TRUE(s.ok()) << s.to_string();
        for (size_t i = 0; i < ref.size(); ++i) {
          ASSERT_NEAR(out[i], ref[i], 2e-6 + 2e-6 * std::fabs(ref[i]))
              << tc.rows << "x" << tc.cols << " at " << i;
        }
      }
    }
  }
}

TEST(OpsNorm, RejectsMismatchedWeight) {
  std::vector<float> x(12), w(5);
  const Status s = rms_norm({x.data(), DType::kF32, {3, 4}}, {x.data(), DType::kF32, {3, 4}},
                            {w.data(), DType::kF32, {5}}, 1e-6f);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("weight"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace vila::cpu
