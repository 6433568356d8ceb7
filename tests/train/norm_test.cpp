// RMSNorm / LayerNorm training ops: finite-difference gradients against float64 references and
// bit-equality of the forward with the inference ops.
#include "ops/cpu/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gradcheck.h"
#include "train/norm.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

struct NormCase {
  int64_t rows, cols;
};
const NormCase kNormCases[] = {{5, 7}, {1, 1}, {3, 2}, {4, 33}};
constexpr float kEps = 1e-5f;

std::vector<double> rms_norm_f64(const std::vector<double>& x, const std::vector<double>& w,
                                 int64_t rows, int64_t c) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < c; ++i) ss += x[r * c + i] * x[r * c + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(c) + kEps);
    for (int64_t i = 0; i < c; ++i) y[r * c + i] = w[i] * x[r * c + i] * inv;
  }
  return y;
}

std::vector<double> layer_norm_f64(const std::vector<double>& x, const std::vector<double>& w,
                                   const std::vector<double>& b, int64_t rows, int64_t c) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0.0;
    for (int64_t i = 0; i < c; ++i) mean += x[r * c + i];
    mean /= static_cast<double>(c);
    double var = 0.0;
    for (int64_t i = 0; i < c; ++i) var += (x[r * c + i] - mean) * (x[r * c + i] - mean);
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(c) + kEps);
    for (int64_t i = 0; i < c; ++i) y[r * c + i] = (x[r * c + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

TEST(TrainNorm, RmsNormGradCheck) {
  std::mt19937 rng(11);
  for (const NormCase& tc : kNormCases) {
    SCOPED_TRACE(::testing::Message() << tc.rows << " x " << tc.cols);
    const Shape shape{tc.rows, tc.cols};
    std::vector<float> x = random_vector(tc.rows * tc.cols, rng, -2.0f, 2.0f);
    std::vector<float> w = random_vector(tc.cols, rng, 0.5f, 1.5f);
    std::vector<float> r = random_vector(tc.rows * tc.cols, rng);
    std::vector<float> y(x.size());
    RmsNormSaved saved;
    ASSERT_TRUE(rms_norm_forward(f32_view(y.data(), shape), f32_view(x.data(), shape),
                                 f32_view(w.data(), {tc.cols}), kEps, &saved)
                    .ok());
    std::vector<float> dx(x.size()), dw(w.size(), 0.0f);
    ASSERT_TRUE(rms_norm_backward(f32_view(dx.data(), shape), {f32_view(dw.data(), {tc.cols}), {}},
                                  f32_view(r.data(), shape), f32_view(x.data(), shape),
                                  f32_view(w.data(), {tc.cols}), saved)
                    .ok());
    std::vector<double> x64 = to_f64(x), w64 = to_f64(w);
    auto loss = [&] { return project(rms_norm_f64(x64, w64, tc.rows, tc.cols), r); };
    EXPECT_LT(testing::max_abs_diff(y, rms_norm_f64(x64, w64, tc.rows, tc.cols)), 1e-5);
    if (tc.cols > 1) {  // with C = 1, y = w·sign(x): dx is ~0 and the check would be of nothing
      EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss))) << "dx";
    }
    EXPECT_TRUE(gradients_match(dw, numeric_gradient(w64, loss))) << "dw";
  }
}

TEST(TrainNorm, LayerNormGradCheck) {
  std::mt19937 rng(12);
  for (const NormCase& tc : kNormCases) {
    // C = 1 normalises to 0 whatever x is; with C = 2, x̂ = ±1 up to eps, so dx is an O(eps)
    // remainder of O(1) terms that cancel in fp32: both say nothing about the backward.
    if (tc.cols < 3) continue;
    SCOPED_TRACE(::testing::Message() << tc.rows << " x " << tc.cols);
    const Shape shape{tc.rows, tc.cols};
    std::vector<float> x = random_vector(tc.rows * tc.cols, rng, -2.0f, 2.0f);
    std::vector<float> w = random_vector(tc.cols, rng, 0.5f, 1.5f);
    std::vector<float> b = random_vector(tc.cols, rng);
    std::vector<float> r = random_vector(tc.rows * tc.cols, rng);
    std::vector<float> y(x.size());
    LayerNormSaved saved;
    ASSERT_TRUE(layer_norm_forward(f32_view(y.data(), shape), f32_view(x.data(), shape),
                                   f32_view(w.data(), {tc.cols}), f32_view(b.data(), {tc.cols}),
                                   kEps, &saved)
                    .ok());
    // Parameter gradients accumulate onto what is there.
    std::vector<float> dx(x.size()), dw(w.size(), 1.0f), db(b.size(), -2.0f);
    ASSERT_TRUE(
        layer_norm_backward(f32_view(dx.data(), shape),
                            {f32_view(dw.data(), {tc.cols}), f32_view(db.data(), {tc.cols})},
                            f32_view(r.data(), shape), f32_view(x.data(), shape),
                            f32_view(w.data(), {tc.cols}), saved)
            .ok());
    for (float& v : dw) v -= 1.0f;
    for (float& v : db) v += 2.0f;
    std::vector<double> x64 = to_f64(x), w64 = to_f64(w), b64 = to_f64(b);
    auto loss = [&] { return project(layer_norm_f64(x64, w64, b64, tc.rows, tc.cols), r); };
    EXPECT_LT(testing::max_abs_diff(y, layer_norm_f64(x64, w64, b64, tc.rows, tc.cols)), 1e-5);
    EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss), 2e-4)) << "dx";
    EXPECT_TRUE(gradients_match(dw, numeric_gradient(w64, loss))) << "dw";
    EXPECT_TRUE(gradients_match(db, numeric_gradient(b64, loss))) << "db";
  }
}

TEST(TrainNorm, ForwardEqualsInferenceOps) {
  std::mt19937 rng(13);
  const int64_t rows = 6, c = 45;
  const Shape shape{rows, c};
  std::vector<float> x = random_vector(rows * c, rng, -3.0f, 3.0f), w = random_vector(c, rng),
                     b = random_vector(c, rng);
  std::vector<float> y(x.size()), ref(x.size());
  RmsNormSaved rs;
  ASSERT_TRUE(rms_norm_forward(f32_view(y.data(), shape), f32_view(x.data(), shape),
                               f32_view(w.data(), {c}), kEps, &rs)
                  .ok());
  ASSERT_TRUE(cpu::rms_norm(f32_view(ref.data(), shape), f32_view(x.data(), shape),
                            f32_view(w.data(), {c}), kEps)
                  .ok());
  EXPECT_EQ(y, ref);
  LayerNormSaved ls;
  ASSERT_TRUE(layer_norm_forward(f32_view(y.data(), shape), f32_view(x.data(), shape),
                                 f32_view(w.data(), {c}), f32_view(b.data(), {c}), kEps, &ls)
                  .ok());
  ASSERT_TRUE(cpu::layer_norm(f32_view(ref.data(), shape), f32_view(x.data(), shape),
                              f32_view(w.data(), {c}), f32_view(b.data(), {c}), kEps)
                  .ok());
  EXPECT_EQ(y, ref);
  // The saved statistics are the ones the forward used: y = (x - mean) rstd w + b.
  for (int64_t r = 0; r < rows; ++r) {
    const float want = (x[r * c] - ls.mean[r]) * ls.rstd[r] * w[0] + b[0];
    EXPECT_EQ(y[r * c], want);
  }
}

TEST(TrainNorm, BackwardInPlaceAndBadArguments) {
  std::mt19937 rng(14);
  const int64_t rows = 3, c = 8;
  const Shape shape{rows, c};
  std::vector<float> x = random_vector(rows * c, rng), w = random_vector(c, rng),
                     dy = random_vector(rows * c, rng);
  std::vector<float> y(x.size()), dx(x.size());
  RmsNormSaved saved;
  ASSERT_TRUE(rms_norm_forward(f32_view(y.data(), shape), f32_view(x.data(), shape),
                               f32_view(w.data(), {c}), kEps, &saved)
                  .ok());
  ASSERT_TRUE(rms_norm_backward(f32_view(dx.data(), shape), {}, f32_view(dy.data(), shape),
                                f32_view(x.data(), shape), f32_view(w.data(), {c}), saved)
                  .ok());
  std::vector<float> g = dy;  // dx written over dy
  ASSERT_TRUE(rms_norm_backward(f32_view(g.data(), shape), {}, f32_view(g.data(), shape),
                                f32_view(x.data(), shape), f32_view(w.data(), {c}), saved)
                  .ok());
  EXPECT_EQ(g, dx);
  // y aliasing x, a wrong weight length and stale saved statistics are refused.
  EXPECT_EQ(rms_norm_forward(f32_view(x.data(), shape), f32_view(x.data(), shape),
                             f32_view(w.data(), {c}), kEps, &saved)
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(rms_norm_forward(f32_view(y.data(), shape), f32_view(x.data(), shape),
                             f32_view(w.data(), {c - 1}), kEps, &saved)
                .code(),
            StatusCode::kInvalidArgument);
  RmsNormSaved stale;
  stale.rstd.resize(1);
  const Status s = rms_norm_backward(f32_view(dx.data(), shape), {}, f32_view(dy.data(), shape),
                                     f32_view(x.data(), shape), f32_view(w.data(), {c}), stale);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rms_norm"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace vila::train
