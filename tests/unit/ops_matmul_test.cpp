// linear vs a plain-loop double-accumulation reference, over odd shapes, weight/bias dtypes, the
// GEMV and GEMM paths, and both SIMD levels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {
namespace {

// Values of a weight tensor stored in `dtype`, and the exact fp32 values they represent.
struct HostWeight {
  DType dtype;
  std::vector<uint8_t> bytes;
  std::vector<float> values;
  Shape shape;
  TensorView view() { return {bytes.data(), dtype, shape}; }
};

HostWeight make_weight(DType dtype, Shape shape, std::mt19937& rng) {
  HostWeight w{dtype, {}, {}, shape};
  const int64_t n = shape.numel();
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> raw(static_cast<size_t>(n));
  for (float& v : raw) v = dist(rng);
  w.bytes.resize(static_cast<size_t>(dtype_bytes(dtype, n)));
  EXPECT_TRUE(convert_from_f32(raw.data(), dtype, w.bytes.data(), n).ok());
  w.values.resize(static_cast<size_t>(n));
  EXPECT_TRUE(convert_to_f32(dtype, w.bytes.data(), w.values.data(), n).ok());
  return w;
}

struct LinearCase {
  int64_t m, k, n;
};

class SimdLevels : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override { simd_set_level(GetParam()); }
  void TearDown() override { simd_set_level(simd_detect()); }
};

TEST_P(SimdLevels, LinearMatchesReference) {
  const LinearCase cases[] = {{1, 1, 1},       {1, 17, 5},     {2, 257, 300},  {3, 33, 65},
                              {4, 129, 31},    {5, 64, 7},     {17, 100, 300}, {64, 257, 129},
                              {6, 2048, 1100}, {1, 896, 2000}, {9, 0, 4}};
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16};
  const LinearAlgo algos[] = {LinearAlgo::kAuto, LinearAlgo::kGemv, LinearAlgo::kGemm};
  std::mt19937 rng(1234);
  for (const LinearCase& tc : cases) {
    for (DType wdt : dtypes) {
      for (int bias_kind = 0; bias_kind < 3; ++bias_kind) {    // none, f32, bf16
        if (tc.k * tc.n > 100000 && bias_kind != 2) continue;  // big shapes: one bias variant
        HostWeight w = make_weight(wdt, {tc.n, tc.k}, rng);
        HostWeight b = make_weight(bias_kind == 2 ? DType::kBF16 : DType::kF32, {tc.n}, rng);
        HostWeight x = make_weight(DType::kF32, {tc.m, tc.k}, rng);
        LinearWeight lw{w.view(), bias_kind == 0 ? TensorView() : b.view()};

        // Reference: double accumulation; tolerance scaled by sum |x w|.
        std::vector<double> ref(static_cast<size_t>(tc.m * tc.n));
        std::vector<double> mag(ref.size());
        for (int64_t i = 0; i < tc.m; ++i) {
          for (int64_t j = 0; j < tc.n; ++j) {
            double s = 0.0, a = 0.0;
            for (int64_t p = 0; p < tc.k; ++p) {
              const double prod =
                  static_cast<double>(x.values[i * tc.k + p]) * w.values[j * tc.k + p];
              s += prod;
              a += std::fabs(prod);
            }
            if (bias_kind != 0) s += b.values[j];
            ref[i * tc.n + j] = s;
            mag[i * tc.n + j] = a;
          }
        }
        for (LinearAlgo algo : algos) {
          std::vector<float> out(ref.size(), 123.0f);
          const Status s = linear({out.data(), DType::kF32, {tc.m, tc.n}}, x.view(), lw, {algo});
          ASSERT_TRUE(s.ok()) << s.to_string();
          for (size_t i = 0; i < out.size(); ++i) {
            ASSERT_NEAR(out[i], ref[i], 1e-5 * mag[i] + 1e-6)
                << "m=" << tc.m << " k=" << tc.k << " n=" << tc.n << " w=" << dtype_name(wdt)
                << " bias=" << bias_kind << " algo=" << static_cast<int>(algo) << " at " << i;
          }
        }
      }
    }
  }
}

TEST_P(SimdLevels, GemvRowsMatchesScalarDefinition) {
  // vec_gemv_rows with a sub-range of rows and strided outputs leaves other outputs untouched.
  std::mt19937 rng(7);
  HostWeight w = make_weight(DType::kBF16, {10, 37}, rng);
  HostWeight x = make_weight(DType::kF32, {3, 37}, rng);
  std::vector<float> out(3 * 10, -1.0f);
  vec_gemv_rows(DType::kBF16, w.bytes.data(), 37, 2, 7, x.values.data(), 37, 3, out.data(), 10);
  for (int m = 0; m < 3; ++m) {
    for (int n = 0; n < 10; ++n) {
      if (n < 2 || n >= 7) {
        EXPECT_EQ(out[m * 10 + n], -1.0f);
        continue;
      }
      double s = 0.0;
      for (int k = 0; k < 37; ++k)
        s += static_cast<double>(x.values[m * 37 + k]) * w.values[n * 37 + k];
      EXPECT_NEAR(out[m * 10 + n], s, 1e-5);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, SimdLevels, ::testing::Values(SimdLevel::kScalar, SimdLevel::kAvx2),
                         [](const auto& info) { return std::string(simd_level_name(info.param)); });

TEST(OpsLinear, RejectsBadShapesAndDtypes) {
  std::vector<float> w(6), x(6), y(4);
  LinearWeight lw{{w.data(), DType::kF32, {2, 3}}, {}};
  // in last dim 2 != K 3
  Status s = linear({y.data(), DType::kF32, {2, 2}}, {x.data(), DType::kF32, {3, 2}}, lw);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  // out rows mismatch
  s = linear({y.data(), DType::kF32, {1, 2}}, {x.data(), DType::kF32, {2, 3}}, lw);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  // unsupported weight dtype
  LinearWeight bad{{w.data(), DType::kI8, {2, 3}}, {}};
  s = linear({y.data(), DType::kF32, {2, 2}}, {x.data(), DType::kF32, {2, 3}}, bad);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("i8"), std::string::npos) << s.message();
  // bias of the wrong length
  LinearWeight bad_bias{{w.data(), DType::kF32, {2, 3}}, {x.data(), DType::kF32, {3}}};
  EXPECT_EQ(linear_check_weight(bad_bias, "model.layers.0.q_proj").code(),
            StatusCode::kInvalidArgument);
  EXPECT_NE(linear_check_weight(bad_bias, "model.layers.0.q_proj").message().find("q_proj"),
            std::string::npos);
}

}  // namespace
}  // namespace vila::cpu
