// GELU (erf, tanh), SiLU gate and residual add: finite-difference gradients against float64
// references and equality of the forward with the inference ops.
#include "ops/cpu/activation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gradcheck.h"
#include "train/activation.h"
#include "train/residual.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

double gelu_f64(double x, GeluApprox approx) {
  if (approx == GeluApprox::kErf) return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  const double beta = std::sqrt(2.0 / 3.14159265358979323846);
  return 0.5 * x * (1.0 + std::tanh(beta * (x + 0.044715 * x * x * x)));
}

TEST(TrainActivation, GeluGradCheckBothForms) {
  std::mt19937 rng(31);
  const int64_t rows = 5, c = 9;
  const Shape shape{rows, c};
  for (GeluApprox approx : {GeluApprox::kErf, GeluApprox::kTanh}) {
    SCOPED_TRACE(approx == GeluApprox::kErf ? "erf" : "tanh");
    std::vector<float> x = random_vector(rows * c, rng, -4.0f, 4.0f),
                       r = random_vector(rows * c, rng);
    std::vector<float> y(x.size()), ref(x.size()), dx(x.size());
    ASSERT_TRUE(gelu_forward(f32_view(y.data(), shape), f32_view(x.data(), shape), approx).ok());
    ASSERT_TRUE(cpu::gelu(f32_view(ref.data(), shape), f32_view(x.data(), shape), approx).ok());
    EXPECT_EQ(y, ref);
    ASSERT_TRUE(gelu_backward(f32_view(dx.data(), shape), f32_view(r.data(), shape),
                              f32_view(x.data(), shape), approx)
                    .ok());
    std::vector<double> x64 = to_f64(x);
    auto forward64 = [&] {
      std::vector<double> out(x64.size());
      for (size_t i = 0; i < x64.size(); ++i) out[i] = gelu_f64(x64[i], approx);
      return out;
    };
    auto loss = [&] { return project(forward64(), r); };
    EXPECT_LT(testing::max_abs_diff(y, forward64()), 1e-5);
    EXPECT_TRUE(gradients_match(dx, numeric_gradient(x64, loss)));
    std::vector<float> g = r;  // in place: dx over dy
    ASSERT_TRUE(gelu_backward(f32_view(g.data(), shape), f32_view(g.data(), shape),
                              f32_view(x.data(), shape), approx)
                    .ok());
    EXPECT_EQ(g, dx);
  }
}

TEST(TrainActivation, SiluGateGradCheck) {
  std::mt19937 rng(32);
  const int64_t rows = 3, f = 11;
  const Shape shape{rows, f};
  std::vector<float> gate = random_vector(rows * f, rng, -5.0f, 5.0f),
                     up = random_vector(rows * f, rng), r = random_vector(rows * f, rng);
  std::vector<float> y(gate.size()), ref(gate.size()), dgate(gate.size()), dup(gate.size());
  ASSERT_TRUE(silu_gate_forward(f32_view(y.data(), shape), f32_view(gate.data(), shape),
                                f32_view(up.data(), shape))
                  .ok());
  ASSERT_TRUE(cpu::silu_mul(f32_view(ref.data(), shape), f32_view(gate.data(), shape),
                            f32_view(up.data(), shape))
                  .ok());
  EXPECT_EQ(y, ref);
  ASSERT_TRUE(silu_gate_backward(f32_view(dgate.data(), shape), f32_view(dup.data(), shape),
                                 f32_view(r.data(), shape), f32_view(gate.data(), shape),
                                 f32_view(up.data(), shape))
                  .ok());
  std::vector<double> g64 = to_f64(gate), u64 = to_f64(up);
  auto forward64 = [&] {
    std::vector<double> out(g64.size());
    for (size_t i = 0; i < g64.size(); ++i) out[i] = g64[i] / (1.0 + std::exp(-g64[i])) * u64[i];
    return out;
  };
  auto loss = [&] { return project(forward64(), r); };
  EXPECT_LT(testing::max_abs_diff(y, forward64()), 1e-5);
  EXPECT_TRUE(gradients_match(dgate, numeric_gradient(g64, loss))) << "dgate";
  EXPECT_TRUE(gradients_match(dup, numeric_gradient(u64, loss))) << "dup";
  EXPECT_EQ(silu_gate_backward(f32_view(dgate.data(), shape), f32_view(dgate.data(), shape),
                               f32_view(r.data(), shape), f32_view(gate.data(), shape),
                               f32_view(up.data(), shape))
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(TrainResidual, AddGradCheckAndJoin) {
  std::mt19937 rng(33);
  const int64_t rows = 4, c = 5;
  const Shape shape{rows, c};
  std::vector<float> a = random_vector(rows * c, rng), b = random_vector(rows * c, rng),
                     r = random_vector(rows * c, rng);
  std::vector<float> y(a.size()), da(a.size()), db(a.size());
  ASSERT_TRUE(
      add_forward(f32_view(y.data(), shape), f32_view(a.data(), shape), f32_view(b.data(), shape))
          .ok());
  ASSERT_TRUE(add_backward(f32_view(da.data(), shape), f32_view(db.data(), shape),
                           f32_view(r.data(), shape))
                  .ok());
  std::vector<double> a64 = to_f64(a), b64 = to_f64(b);
  auto loss = [&] {
    std::vector<double> out(a64.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = a64[i] + b64[i];
    return project(out, r);
  };
  EXPECT_TRUE(gradients_match(da, numeric_gradient(a64, loss))) << "da";
  EXPECT_TRUE(gradients_match(db, numeric_gradient(b64, loss))) << "db";
  // The join of two gradient paths adds.
  std::vector<float> acc = da;
  ASSERT_TRUE(accumulate_grad(f32_view(acc.data(), shape), f32_view(db.data(), shape)).ok());
  for (size_t i = 0; i < acc.size(); ++i) EXPECT_EQ(acc[i], 2.0f * r[i]);
  EXPECT_EQ(accumulate_grad(f32_view(acc.data(), shape), f32_view(db.data(), {rows, c - 1})).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::train
