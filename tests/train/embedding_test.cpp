// Embedding (gather / scatter-add) and media splicing, alone and chained the way the model uses
// them (token rows from the table, image rows from the projector): finite-difference gradients.
#include "ops/cpu/embedding.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gradcheck.h"
#include "train/embedding.h"
#include "train/media_splice.h"

namespace vila::train {
namespace {

using testing::gradients_match;
using testing::numeric_gradient;
using testing::project;
using testing::random_vector;
using testing::to_f64;

TEST(TrainEmbedding, GradCheckRepeatedIdsAndForwardEqualsInference) {
  std::mt19937 rng(51);
  const int64_t vocab = 6, c = 5;
  const std::vector<int32_t> ids = {3, 1, 3, 0, 5, 3, 2};  // id 3 three times, 4 never
  const auto n = static_cast<int64_t>(ids.size());
  std::vector<float> table = random_vector(vocab * c, rng), r = random_vector(n * c, rng);
  std::vector<float> out(static_cast<size_t>(n * c)), ref(out.size());
  ASSERT_TRUE(embedding_forward(f32_view(out.data(), {n, c}), f32_view(table.data(), {vocab, c}),
                                ids.data(), n)
                  .ok());
  ASSERT_TRUE(cpu::embedding(f32_view(ref.data(), {n, c}), f32_view(table.data(), {vocab, c}),
                             ids.data(), n)
                  .ok());
  EXPECT_EQ(out, ref);
  const std::vector<float> offset = random_vector(vocab * c, rng);
  std::vector<float> dtable = offset;  // accumulated onto
  ASSERT_TRUE(embedding_backward(f32_view(dtable.data(), {vocab, c}), f32_view(r.data(), {n, c}),
                                 ids.data(), n)
                  .ok());
  for (size_t i = 0; i < dtable.size(); ++i) dtable[i] -= offset[i];
  std::vector<double> t64 = to_f64(table);
  auto loss = [&] {
    std::vector<double> y(static_cast<size_t>(n * c));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < c; ++j) y[i * c + j] = t64[ids[i] * c + j];
    return project(y, r);
  };
  EXPECT_TRUE(gradients_match(dtable, numeric_gradient(t64, loss)));
  const std::vector<int32_t> bad = {0, 6};
  const Status s = embedding_backward(f32_view(dtable.data(), {vocab, c}),
                                      f32_view(r.data(), {2, c}), bad.data(), 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("position 1"), std::string::npos) << s.message();
}

TEST(TrainMediaSplice, GradCheckChainedWithEmbedding) {
  std::mt19937 rng(52);
  const int64_t vocab = 5, c = 4, t = 7;
  const int32_t kImageToken = 4;
  const std::vector<int32_t> ids = {0, kImageToken, kImageToken, 2, 1, kImageToken, 2};
  const std::vector<int64_t> rows = {1, 2, 5};  // where the image features go
  const auto n_feat = static_cast<int64_t>(rows.size());
  std::vector<float> table = random_vector(vocab * c, rng), feats = random_vector(n_feat * c, rng),
                     r = random_vector(t * c, rng);
  std::vector<float> embeds(static_cast<size_t>(t * c));
  ASSERT_TRUE(embedding_forward(f32_view(embeds.data(), {t, c}), f32_view(table.data(), {vocab, c}),
                                ids.data(), t)
                  .ok());
  ASSERT_TRUE(media_splice_forward(f32_view(embeds.data(), {t, c}),
                                   f32_view(feats.data(), {n_feat, c}), rows.data(), n_feat)
                  .ok());
  std::vector<float> dembeds = r, dfeats(feats.size(), 3.0f), dtable(table.size(), 0.0f);
  ASSERT_TRUE(media_splice_backward(f32_view(dfeats.data(), {n_feat, c}),
                                    f32_view(dembeds.data(), {t, c}), rows.data(), n_feat)
                  .ok());
  ASSERT_TRUE(embedding_backward(f32_view(dtable.data(), {vocab, c}),
                                 f32_view(dembeds.data(), {t, c}), ids.data(), t)
                  .ok());
  std::vector<double> t64 = to_f64(table), f64 = to_f64(feats);
  auto forward64 = [&] {
    std::vector<double> y(static_cast<size_t>(t * c));
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < c; ++j) y[i * c + j] = t64[ids[i] * c + j];
    for (int64_t f = 0; f < n_feat; ++f)
      for (int64_t j = 0; j < c; ++j) y[rows[f] * c + j] = f64[f * c + j];
    return y;
  };
  auto loss = [&] { return project(forward64(), r); };
  EXPECT_EQ(testing::max_abs_diff(embeds, forward64()), 0.0);
  EXPECT_TRUE(gradients_match(dfeats, numeric_gradient(f64, loss))) << "dfeats";
  EXPECT_TRUE(gradients_match(dtable, numeric_gradient(t64, loss))) << "dtable";
  for (int64_t j = 0; j < c; ++j) {  // the image token's row gets nothing: it was replaced
    EXPECT_EQ(dtable[kImageToken * c + j], 0.0f);
  }
}

TEST(TrainMediaSplice, BadRows) {
  std::vector<float> embeds(12), feats(8);
  const std::vector<int64_t> twice = {1, 1}, outside = {0, 3};
  Status s = media_splice_forward(f32_view(embeds.data(), {3, 4}), f32_view(feats.data(), {2, 4}),
                                  twice.data(), 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("twice"), std::string::npos) << s.message();
  s = media_splice_forward(f32_view(embeds.data(), {3, 4}), f32_view(feats.data(), {2, 4}),
                           outside.data(), 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = media_splice_forward(f32_view(embeds.data(), {3, 4}), f32_view(feats.data(), {2, 3}),
                           twice.data(), 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::train
