// Linear / GEMM training ops: finite-difference gradients, forward equality with cpu::linear,
// the precision configs (fp32 / bf16 / fp16 emulation, presets, Unimplemented formats).
#include "train/linear.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/dtype.h"
#include "gradcheck.h"
#include "ops/cpu/matmul.h"
#include "train/gemm.h"
#include "train/precision.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

struct LinearCase {
  int64_t m, k, n;
  bool bias;
};
// Odd sizes; M = 19 and 12 take cpu::linear's sgemm path, the others its GEMV.
const LinearCase kLinearCases[] = {
    {7, 13, 5, true}, {19, 11, 6, false}, {1, 3, 1, true}, {12, 9, 10, true}};

// y (M, N) = x (M, K) W (N, K)ᵀ + b in float64.
std::vector<double> linear_f64(const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>* b, int64_t m, int64_t k, int64_t n) {
  std::vector<double> y(static_cast<size_t>(m * n));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      double s = b != nullptr ? (*b)[c] : 0.0;
      for (int64_t i = 0; i < k; ++i) s += x[r * k + i] * w[c * k + i];
      y[r * n + c] = s;
    }
  }
  return y;
}

TEST(TrainLinear, GradCheck) {
  std::mt19937 rng(1);
  const LinearPrecision fp32 = precision_preset("fp32").value();
  for (const LinearCase& tc : kLinearCases) {
    SCOPED_TRACE(::testing::Message() << "M " << tc.m << " K " << tc.k << " N " << tc.n);
    std::vector<float> x = random_vector(tc.m * tc.k, rng);
    std::vector<float> w = random_vector(tc.n * tc.k, rng);
    std::vector<float> b = random_vector(tc.n, rng);
    std::vector<float> r = random_vector(tc.m * tc.n, rng);  // projection = dy
    LinearParams p{f32_view(w.data(), {tc.n, tc.k}),
                   tc.bias ? f32_view(b.data(), {tc.n}) : TensorView()};
    std::vector<float> y(static_cast<size_t>(tc.m * tc.n));
    ASSERT_TRUE(linear_forward(f32_view(y.data(), {tc.m, tc.n}), f32_view(x.data(), {tc.m, tc.k}),
                               p, fp32.forward)
                    .ok());
    // Parameter gradients accumulate: start them at a known offset and subtract it after.
    const std::vector<float> dw0 = random_vector(tc.n * tc.k, rng);
    const std::vector<float> db0 = random_vector(tc.n, rng);
    std::vector<float> dx(x.size()), dw = dw0, db = db0;
    LinearGrads g{f32_view(dw.data(), {tc.n, tc.k}),
                  tc.bias ? f32_view(db.data(), {tc.n}) : TensorView()};
    ASSERT_TRUE(linear_backward(f32_view(dx.data(), {tc.m, tc.k}), g,
                                f32_view(r.data(), {tc.m, tc.n}), f32_view(x.data(), {tc.m, tc.k}),
                                p, fp32)
                    .ok());
    for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];
    for (size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];

    std::vector<double> x64 = to_f64(x), w64 = to_f64(w), b64 = to_f64(b);
    auto loss = [&] {
      return project(linear_f64(x64, w64, tc.bias ? &b64 : nullptr, tc.m, tc.k, tc.n), r);
    };
    EXPECT_LT(
        testing::max_abs_diff(y, linear_f64(x64, w64, tc.bias ? &b64 : nullptr, tc.m, tc.k, tc.n)),
        1e-5);
    EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss))) << "dx";
    EXPECT_TRUE(gradients_match(dw, numeric_gradient(w64, loss))) << "dW";
    if (tc.bias) {
      EXPECT_TRUE(gradients_match(db, numeric_gradient(b64, loss))) << "db";
    }
  }
}

TEST(TrainLinear, ForwardEqualsInferenceLinear) {
  std::mt19937 rng(2);
  for (const LinearCase& tc : kLinearCases) {
    std::vector<float> x = random_vector(tc.m * tc.k, rng), w = random_vector(tc.n * tc.k, rng),
                       b = random_vector(tc.n, rng);
    cpu::LinearWeight lw{f32_view(w.data(), {tc.n, tc.k}), f32_view(b.data(), {tc.n})};
    std::vector<float> ref(static_cast<size_t>(tc.m * tc.n)), y(ref.size());
    ASSERT_TRUE(
        cpu::linear(f32_view(ref.data(), {tc.m, tc.n}), f32_view(x.data(), {tc.m, tc.k}), lw).ok());
    ASSERT_TRUE(linear_forward(f32_view(y.data(), {tc.m, tc.n}), f32_view(x.data(), {tc.m, tc.k}),
                               {lw.weight, lw.bias}, GemmPrecision{})
                    .ok());
    EXPECT_EQ(y, ref);
  }
}

// Values rounded to `dtype` and back.
std::vector<double> rounded(const std::vector<float>& v, DType dtype) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    out[i] = dtype == DType::kBF16 ? bf16_to_f32(f32_to_bf16(v[i])) : f16_to_f32(f32_to_f16(v[i]));
  }
  return out;
}

TEST(TrainLinear, HalfPrecisionOperandsAreRoundedBeforeTheGemm) {
  std::mt19937 rng(3);
  const int64_t m = 9, k = 33, n = 7;
  std::vector<float> x = random_vector(m * k, rng), w = random_vector(n * k, rng),
                     dy = random_vector(m * n, rng);
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    LinearPrecision prec;
    for (GemmPrecision* g : {&prec.forward, &prec.input_grad, &prec.weight_grad}) {
      g->a.dtype = dtype;
      g->b.dtype = dtype;
    }
    const LinearParams p{f32_view(w.data(), {n, k}), {}};
    std::vector<float> y(static_cast<size_t>(m * n)), dx(x.size()), dw(w.size(), 0.0f);
    ASSERT_TRUE(
        linear_forward(f32_view(y.data(), {m, n}), f32_view(x.data(), {m, k}), p, prec.forward)
            .ok());
    ASSERT_TRUE(linear_backward(f32_view(dx.data(), {m, k}), {f32_view(dw.data(), {n, k}), {}},
                                f32_view(dy.data(), {m, n}), f32_view(x.data(), {m, k}), p, prec)
                    .ok());
    const std::vector<double> xr = rounded(x, dtype), wr = rounded(w, dtype),
                              dyr = rounded(dy, dtype);
    // Products of the rounded operands are exact in fp32 accumulation up to summation order.
    EXPECT_LT(testing::max_abs_diff(y, linear_f64(xr, wr, nullptr, m, k, n)), 1e-5);
    std::vector<double> dx_ref(x.size(), 0.0), dw_ref(w.size(), 0.0);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < n; ++c) {
        for (int64_t i = 0; i < k; ++i) {
          dx_ref[r * k + i] += dyr[r * n + c] * wr[c * k + i];
          dw_ref[c * k + i] += dyr[r * n + c] * xr[r * k + i];
        }
      }
    }
    EXPECT_LT(testing::max_abs_diff(dx, dx_ref), 1e-5);
    EXPECT_LT(testing::max_abs_diff(dw, dw_ref), 1e-5);
    // And the rounding did happen: the unrounded product differs by far more.
    EXPECT_GT(testing::max_abs_diff(y, linear_f64(to_f64(x), to_f64(w), nullptr, m, k, n)), 1e-4);
  }
}

TEST(TrainLinear, AccumulatorFormatRoundsTheResult) {
  std::mt19937 rng(4);
  const int64_t m = 5, k = 17, n = 3;
  std::vector<float> x = random_vector(m * k, rng), w = random_vector(n * k, rng),
                     b = random_vector(n, rng);
  GemmPrecision prec;
  prec.accum = DType::kBF16;
  std::vector<float> y(static_cast<size_t>(m * n));
  ASSERT_TRUE(linear_forward(f32_view(y.data(), {m, n}), f32_view(x.data(), {m, k}),
                             {f32_view(w.data(), {n, k}), f32_view(b.data(), {n})}, prec)
                  .ok());
  const std::vector<double> ref =
      linear_f64(to_f64(x), to_f64(w), nullptr, m, k, n);  // without the bias
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_EQ(y[i], bf16_to_f32(f32_to_bf16(y[i]))) << "not a bf16 value at " << i;
    const double want = ref[i] + b[i % n];
    EXPECT_NEAR(y[i], want, std::abs(want) * 1e-2 + 1e-6);
  }
}

TEST(TrainPrecision, Presets) {
  const LinearPrecision fp32 = precision_preset("fp32").value();
  const LinearPrecision bf16 = precision_preset("bf16").value();
  for (const GemmPrecision* g : {&fp32.forward, &fp32.input_grad, &fp32.weight_grad}) {
    EXPECT_EQ(g->a.dtype, DType::kF32);
    EXPECT_EQ(g->b.dtype, DType::kF32);
    EXPECT_EQ(g->accum, DType::kF32);
  }
  for (const GemmPrecision* g : {&bf16.forward, &bf16.input_grad, &bf16.weight_grad}) {
    EXPECT_EQ(g->a.dtype, DType::kBF16);
    EXPECT_EQ(g->b.dtype, DType::kBF16);
    EXPECT_EQ(g->accum, DType::kF32);
  }
  EXPECT_EQ(gemm_precision_name(bf16.forward), "bf16/bf16->f32");
  const auto bad = precision_preset("fp7");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("fp7"), std::string::npos);
}

TEST(TrainPrecision, ScaledFormatsAreUnimplementedAndOthersInvalid) {
  std::vector<float> x(6, 1.0f), w(6, 1.0f), y(4), dy(4, 1.0f), dx(6), dw(6);
  const LinearParams p{f32_view(w.data(), {2, 3}), {}};
  for (DType dtype : {DType::kF8E4M3, DType::kF8E5M2, DType::kI8}) {
    for (Granularity gran :
         {Granularity::kPerTensor, Granularity::kPerRow, Granularity::kPerBlock}) {
      GemmPrecision g;
      g.b = {dtype, gran};
      const Status s = linear_forward(f32_view(y.data(), {2, 2}), f32_view(x.data(), {2, 3}), p, g);
      EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
      EXPECT_NE(s.message().find(dtype_name(dtype)), std::string::npos) << s.message();
      LinearPrecision lp;
      lp.weight_grad.a = {dtype, gran};
      const Status sb =
          linear_backward(f32_view(dx.data(), {2, 3}), {f32_view(dw.data(), {2, 3}), {}},
                          f32_view(dy.data(), {2, 2}), f32_view(x.data(), {2, 3}), p, lp);
      EXPECT_EQ(sb.code(), StatusCode::kUnimplemented) << sb.to_string();
    }
  }
  GemmPrecision bad;
  bad.a.dtype = DType::kI32;
  EXPECT_EQ(check_gemm_precision(bad, "forward").code(), StatusCode::kInvalidArgument);
  GemmPrecision bad_accum;
  bad_accum.accum = DType::kF8E4M3;
  EXPECT_EQ(check_gemm_precision(bad_accum, "forward").code(), StatusCode::kInvalidArgument);
}

TEST(TrainGemm, TransposedOperandsAndAccumulate) {
  std::mt19937 rng(5);
  const int64_t m = 37, k = 45, n = 29;  // odd, above one transpose tile
  std::vector<float> a = random_vector(m * k, rng), b = random_vector(n * k, rng);
  std::vector<float> at(a.size()), bt(b.size());  // stored (K, M) and (K, N)
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i) at[i * m + r] = a[r * k + i];
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) bt[i * n + r] = b[r * k + i];
  const std::vector<double> ref = linear_f64(to_f64(a), to_f64(b), nullptr, m, k, n);
  for (int variant = 0; variant < 4; ++variant) {
    const bool ta = (variant & 1) != 0, tb = (variant & 2) != 0;
    GemmOptions opts;
    opts.a_layout = ta ? Layout::kTransposed : Layout::kRowMajor;
    opts.b_layout = tb ? Layout::kTransposed : Layout::kRowMajor;
    std::vector<float> out(static_cast<size_t>(m * n), 0.0f);
    const TensorView av = ta ? f32_view(at.data(), {k, m}) : f32_view(a.data(), {m, k});
    const TensorView bv = tb ? f32_view(bt.data(), {k, n}) : f32_view(b.data(), {n, k});
    ASSERT_TRUE(gemm(f32_view(out.data(), {m, n}), av, bv, GemmPrecision{}, opts).ok());
    EXPECT_LT(testing::max_abs_diff(out, ref), 1e-4) << "variant " << variant;
    opts.accumulate = true;  // out += A Bᵀ: twice the product
    ASSERT_TRUE(gemm(f32_view(out.data(), {m, n}), av, bv, GemmPrecision{}, opts).ok());
    std::vector<double> twice(ref);
    for (double& v : twice) v *= 2.0;
    EXPECT_LT(testing::max_abs_diff(out, twice), 2e-4) << "variant " << variant;
  }
  std::vector<float> out(static_cast<size_t>(m * n));
  const Status s = gemm(f32_view(out.data(), {m, n}), f32_view(a.data(), {m, k}),
                        f32_view(b.data(), {k, n}), GemmPrecision{});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(TrainLinear, BadShapesAreInvalidArgument) {
  std::vector<float> x(12), w(6), y(8);
  const LinearParams p{f32_view(w.data(), {2, 3}), {}};
  const Status s =
      linear_forward(f32_view(y.data(), {4, 2}), f32_view(x.data(), {3, 4}), p, GemmPrecision{});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("linear"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace vila::train
