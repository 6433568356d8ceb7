// Learning-rate schedules: values at known steps (start, end of warmup, middle, end, past the end)
// for cosine / linear / constant, the min-lr floor, warmup from a ratio, and bad configs.
#include "train/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace vila::train {
namespace {

constexpr double kPeak = 2e-3;
constexpr int64_t kWarmup = 4;
constexpr int64_t kTotal = 104;                                // 100 steps after warmup
constexpr int64_t kMiddle = kWarmup + (kTotal - kWarmup) / 2;  // progress 0.5

LrSchedule make(LrScheduleKind kind, double min_ratio = 0.0, int64_t warmup = kWarmup) {
  StatusOr<LrSchedule> s = LrSchedule::create({kind, kPeak, warmup, kTotal, min_ratio});
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return *s;
}

TEST(ScheduleTest, CosineKnownSteps) {
  const LrSchedule s = make(LrScheduleKind::kCosine);
  EXPECT_EQ(s.lr(0), 0.0);                     // HF: the first step has lr 0 under warmup
  EXPECT_DOUBLE_EQ(s.lr(1), kPeak / kWarmup);  // linear warmup
  EXPECT_DOUBLE_EQ(s.lr(kWarmup - 1), kPeak * (kWarmup - 1) / kWarmup);
  EXPECT_DOUBLE_EQ(s.lr(kWarmup), kPeak);  // peak right after warmup
  EXPECT_NEAR(s.lr(kMiddle), kPeak * 0.5, 1e-18);
  const double quarter = 0.5 * (1.0 + std::cos(std::numbers::pi * 0.25));
  EXPECT_DOUBLE_EQ(s.lr(kWarmup + 25), kPeak * quarter);
  EXPECT_NEAR(s.lr(kTotal), 0.0, 1e-18);
  EXPECT_NEAR(s.lr(kTotal + 50), 0.0, 1e-18);  // stays at the end value
  EXPECT_EQ(s.lr(-3), 0.0);
}

TEST(ScheduleTest, CosineMinLrRatio) {
  const double r = 0.1;
  const LrSchedule s = make(LrScheduleKind::kCosine, r);
  EXPECT_DOUBLE_EQ(s.lr(kWarmup), kPeak);
  EXPECT_DOUBLE_EQ(s.lr(kMiddle), kPeak * (r + (1 - r) * 0.5));
  EXPECT_DOUBLE_EQ(s.lr(kTotal), kPeak * r);
  EXPECT_DOUBLE_EQ(s.lr(kTotal + 1000), kPeak * r);
}

TEST(ScheduleTest, LinearAndConstant) {
  const LrSchedule lin = make(LrScheduleKind::kLinear);
  EXPECT_EQ(lin.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(lin.lr(kWarmup), kPeak);
  EXPECT_DOUBLE_EQ(lin.lr(kMiddle), kPeak * 0.5);
  EXPECT_DOUBLE_EQ(lin.lr(kWarmup + 75), kPeak * 0.25);
  EXPECT_EQ(lin.lr(kTotal), 0.0);

  const LrSchedule con = make(LrScheduleKind::kConstant);
  EXPECT_DOUBLE_EQ(con.lr(2), kPeak * 2 / kWarmup);
  EXPECT_EQ(con.lr(kWarmup), kPeak);
  EXPECT_EQ(con.lr(kMiddle), kPeak);
  EXPECT_EQ(con.lr(kTotal + 7), kPeak);

  const LrSchedule no_warmup = make(LrScheduleKind::kCosine, 0.0, /*warmup=*/0);
  EXPECT_EQ(no_warmup.lr(0), kPeak);
}

TEST(ScheduleTest, WarmupFromRatio) {
  StatusOr<int64_t> w = warmup_steps_from_ratio(0.03, 1000);  // VILA's warmup_ratio
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, 30);
  w = warmup_steps_from_ratio(0.5, 7);  // ceil(3.5)
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, 4);
  w = warmup_steps_from_ratio(1.5, 10);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("warmup_ratio"), std::string::npos);
  w = warmup_steps_from_ratio(0.1, 0);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("total_steps"), std::string::npos);
}

TEST(ScheduleTest, ParseNames) {
  EXPECT_EQ(*parse_lr_schedule("cosine"), LrScheduleKind::kCosine);
  EXPECT_EQ(*parse_lr_schedule("linear"), LrScheduleKind::kLinear);
  EXPECT_EQ(*parse_lr_schedule("constant"), LrScheduleKind::kConstant);
  EXPECT_EQ(*parse_lr_schedule("constant_with_warmup"), LrScheduleKind::kConstant);
  StatusOr<LrScheduleKind> bad = parse_lr_schedule("polynomial");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("lr_scheduler_type"), std::string::npos);
  EXPECT_NE(bad.status().message().find("polynomial"), std::string::npos);
  for (LrScheduleKind k :
       {LrScheduleKind::kConstant, LrScheduleKind::kLinear, LrScheduleKind::kCosine}) {
    EXPECT_EQ(*parse_lr_schedule(lr_schedule_name(k)), k);
  }
}

TEST(ScheduleTest, BadConfigNamesField) {
  struct Bad {
    LrScheduleConfig config;
    const char* field;
  };
  const Bad cases[] = {
      {{LrScheduleKind::kCosine, -1.0, 0, 10, 0.0}, "peak_lr"},
      {{LrScheduleKind::kCosine, NAN, 0, 10, 0.0}, "peak_lr"},
      {{LrScheduleKind::kCosine, 1e-3, 0, 0, 0.0}, "total_steps"},
      {{LrScheduleKind::kCosine, 1e-3, 11, 10, 0.0}, "warmup_steps"},
      {{LrScheduleKind::kCosine, 1e-3, -1, 10, 0.0}, "warmup_steps"},
      {{LrScheduleKind::kCosine, 1e-3, 0, 10, 1.5}, "min_lr_ratio"},
  };
  for (const Bad& b : cases) {
    StatusOr<LrSchedule> s = LrSchedule::create(b.config);
    ASSERT_FALSE(s.ok()) << b.field;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(b.field), std::string::npos) << s.status().message();
  }
}

}  // namespace
}  // namespace vila::train
