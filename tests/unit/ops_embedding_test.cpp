// embedding lookup from f32/bf16/f16 tables.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/embedding.h"

namespace vila::cpu {
namespace {

TEST(OpsEmbedding, GathersRowsInAnyDtype) {
  const int64_t v = 11, c = 19;
  std::mt19937 rng(9);
  std::normal_distribution<float> dist;
  std::vector<float> table(static_cast<size_t>(v * c));
  for (float& x : table) x = dist(rng);
  const std::vector<int32_t> ids = {3, 0, 10, 3, 7};
  const auto n = static_cast<int64_t>(ids.size());
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(dtype_bytes(dt, v * c)));
    ASSERT_TRUE(convert_from_f32(table.data(), dt, bytes.data(), v * c).ok());
    std::vector<float> rounded(table.size());
    ASSERT_TRUE(convert_to_f32(dt, bytes.data(), rounded.data(), v * c).ok());
    std::vector<float> out(static_cast<size_t>(n * c));
    ASSERT_TRUE(
        embedding({out.data(), DType::kF32, {n, c}}, {bytes.data(), dt, {v, c}}, ids.data(), n)
            .ok());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < c; ++j) ASSERT_EQ(out[i * c + j], rounded[ids[i] * c + j]);
    }
  }
}

TEST(OpsEmbedding, RejectsOutOfRangeIds) {
  std::vector<float> table(4 * 3), out(2 * 3);
  const int32_t ids[] = {1, 4};
  const Status s =
      embedding({out.data(), DType::kF32, {2, 3}}, {table.data(), DType::kF32, {4, 3}}, ids, 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("token id 4 at position 1"), std::string::npos) << s.message();
  const int32_t neg[] = {-1};
  EXPECT_EQ(
      embedding({out.data(), DType::kF32, {1, 3}}, {table.data(), DType::kF32, {4, 3}}, neg, 1)
          .code(),
      StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::cpu
