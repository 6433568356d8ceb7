// The gradient checker itself: it must be able to fail. A correct analytic gradient passes, and
// the same gradient with one element off by 1 %, or with a term missing, does not.
#include "gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::random_vector;

TEST(TrainGradCheck, TheComparisonCanFail) {
  std::mt19937 rng(71);
  std::vector<float> xf = random_vector(12, rng, 0.5f, 2.0f);
  std::vector<double> x(xf.begin(), xf.end());
  // L = sum_i x_i³ sin(x_i): dL/dx_i = 3 x_i² sin(x_i) + x_i³ cos(x_i).
  auto loss = [&] {
    double s = 0.0;
    for (double v : x) s += v * v * v * std::sin(v);
    return s;
  };
  std::vector<float> analytic(x.size()), missing_term(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const auto v = static_cast<float>(x[i]);
    analytic[i] = 3.0f * v * v * std::sin(v) + v * v * v * std::cos(v);
    missing_term[i] = 3.0f * v * v * std::sin(v);
  }
  const std::vector<double> numeric = numeric_gradient(x, loss);
  EXPECT_TRUE(gradients_match(analytic, numeric));
  std::vector<float> off = analytic;
  off[5] *= 1.01f;
  EXPECT_FALSE(gradients_match(off, numeric));
  EXPECT_FALSE(gradients_match(missing_term, numeric));
  std::vector<float> nan = analytic;
  nan[0] = std::nanf("");
  EXPECT_FALSE(gradients_match(nan, numeric));
  EXPECT_FALSE(gradients_match(std::vector<float>(3, 0.0f), std::vector<double>(3, 0.0)));
}

}  // namespace
}  // namespace vila::train
