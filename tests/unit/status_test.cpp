#include "core/status.h"

#include <gtest/gtest.h>

namespace vila {
namespace {

StatusOr<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("x must be positive");
  return x;
}

Status chain(int x, int* out) {
  VILA_ASSIGN_OR_RETURN(*out, parse_positive(x));
  return ok_status();
}

TEST(Status, OkAndError) {
  int v = 0;
  EXPECT_TRUE(chain(3, &v).ok());
  EXPECT_EQ(v, 3);
  Status s = chain(-1, &v);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.with_context("config.json").to_string(),
            "InvalidArgument: config.json: x must be positive");
}

}  // namespace
}  // namespace vila
