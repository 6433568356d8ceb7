// Cross-entropy with ignore mask: finite-difference gradient of the loss against a float64
// reference, normalizer / grad scale, stability with large logits, and the error cases.
#include "train/cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gradcheck.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::random_vector;
using testing::to_f64;

// Mean over counted tokens of logsumexp(z_t) - z_t[y_t], float64.
double cross_entropy_f64(const std::vector<double>& z, const std::vector<int32_t>& labels,
                         int64_t vocab) {
  double sum = 0.0;
  int64_t counted = 0;
  for (size_t t = 0; t < labels.size(); ++t) {
    if (labels[t] == kIgnoreIndex) continue;
    const double* row = z.data() + t * vocab;
    double mx = row[0];
    for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, row[j]);
    double se = 0.0;
    for (int64_t j = 0; j < vocab; ++j) se += std::exp(row[j] - mx);
    sum += mx + std::log(se) - row[labels[t]];
    ++counted;
  }
  return sum / static_cast<double>(counted);
}

TEST(TrainCrossEntropy, GradCheckWithIgnoredTokens) {
  std::mt19937 rng(61);
  const int64_t vocab = 11;
  const std::vector<int32_t> labels = {3, kIgnoreIndex, 0, 10, kIgnoreIndex, 7, 3};
  const auto t = static_cast<int64_t>(labels.size());
  const Shape shape{t, vocab};
  std::vector<float> z = random_vector(t * vocab, rng, -3.0f, 3.0f);
  std::vector<float> dz(z.size(), 4.0f);
  const auto res =
      cross_entropy(f32_view(dz.data(), shape), f32_view(z.data(), shape), labels.data());
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->counted, 5);
  std::vector<double> z64 = to_f64(z);
  EXPECT_NEAR(res->loss, cross_entropy_f64(z64, labels, vocab), 1e-6);
  auto loss = [&] { return cross_entropy_f64(z64, labels, vocab); };
  EXPECT_TRUE(gradients_match(dz, numeric_gradient(z64, loss)));
  for (int64_t j = 0; j < vocab; ++j) EXPECT_EQ(dz[1 * vocab + j], 0.0f);  // ignored row

  // In place (dlogits over logits) gives the same; loss only leaves logits alone.
  std::vector<float> zz = z;
  ASSERT_TRUE(
      cross_entropy(f32_view(zz.data(), shape), f32_view(zz.data(), shape), labels.data()).ok());
  EXPECT_EQ(zz, dz);
  const auto only_loss = cross_entropy({}, f32_view(z.data(), shape), labels.data());
  ASSERT_TRUE(only_loss.ok());
  EXPECT_EQ(only_loss->loss, res->loss);

  // Micro-batch normalizer and a grad scale.
  CrossEntropyOptions opts;
  opts.normalizer = 20;
  opts.grad_scale = 0.5f;
  std::vector<float> dz2(z.size());
  const auto res2 =
      cross_entropy(f32_view(dz2.data(), shape), f32_view(z.data(), shape), labels.data(), opts);
  ASSERT_TRUE(res2.ok());
  EXPECT_NEAR(res2->loss, res->loss * 5.0 / 20.0, 1e-9);
  for (size_t i = 0; i < dz.size(); ++i) EXPECT_NEAR(dz2[i], dz[i] * 0.5f * 5.0f / 20.0f, 1e-7f);
}

TEST(TrainCrossEntropy, StableWithLargeLogits) {
  const int64_t vocab = 4;
  std::vector<float> z = {1000.0f, 990.0f, -1000.0f, 999.0f, -500.0f, -510.0f, -505.0f, -520.0f};
  const std::vector<int32_t> labels = {1, 2};
  std::vector<float> dz(z.size());
  const auto res =
      cross_entropy(f32_view(dz.data(), {2, vocab}), f32_view(z.data(), {2, vocab}), labels.data());
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE(std::isfinite(res->loss));
  EXPECT_NEAR(res->loss, cross_entropy_f64(to_f64(z), labels, vocab), 1e-4);
  for (float v : dz) EXPECT_TRUE(std::isfinite(v));
}

TEST(TrainCrossEntropy, AllIgnoredIsAClearErrorAndBadLabelsNamed) {
  const int64_t vocab = 3;
  std::vector<float> z(6, 0.5f), dz(6, 0.0f);
  const std::vector<int32_t> none = {kIgnoreIndex, kIgnoreIndex};
  const auto res =
      cross_entropy(f32_view(dz.data(), {2, vocab}), f32_view(z.data(), {2, vocab}), none.data());
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(res.status().message().find("all 2 labels are ignored"), std::string::npos)
      << res.status().message();
  // With a batch normalizer an all-ignored micro-batch is legitimate: zero loss, zero grads.
  CrossEntropyOptions opts;
  opts.normalizer = 8;
  const auto zero = cross_entropy(f32_view(dz.data(), {2, vocab}), f32_view(z.data(), {2, vocab}),
                                  none.data(), opts);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->loss, 0.0);
  for (float v : dz) EXPECT_EQ(v, 0.0f);
  const std::vector<int32_t> bad = {1, 3};
  const auto b = cross_entropy({}, f32_view(z.data(), {2, vocab}), bad.data());
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("position 1"), std::string::npos) << b.status().message();
  const std::vector<int32_t> negative = {-1, 0};
  EXPECT_FALSE(cross_entropy({}, f32_view(z.data(), {2, vocab}), negative.data()).ok());
}

}  // namespace
}  // namespace vila::train
