// Learning-rate schedules (warmup + constant / linear / cosine); math in schedule.h.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

namespace vila::train {

const char* lr_schedule_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::kConstant:
      return "constant";
    case LrScheduleKind::kLinear:
      return "linear";
    case LrScheduleKind::kCosine:
      return "cosine";
  }
  return "?";
}

StatusOr<LrScheduleKind> parse_lr_schedule(std::string_view name) {
  if (name == "constant" || name == "constant_with_warmup") return LrScheduleKind::kConstant;
  if (name == "linear") return LrScheduleKind::kLinear;
  if (name == "cosine" || name == "cosine_with_min_lr") return LrScheduleKind::kCosine;
  return invalid_argument("lr_scheduler_type: unknown schedule '" + std::string(name) +
                          "' (expected constant, linear or cosine)");
}

StatusOr<int64_t> warmup_steps_from_ratio(double ratio, int64_t total_steps) {
  if (!(ratio >= 0.0 && ratio <= 1.0)) {
    return invalid_argument("warmup_ratio must be in [0, 1], got " + std::to_string(ratio));
  }
  if (total_steps <= 0) {
    return invalid_argument("total_steps must be > 0, got " + std::to_string(total_steps));
  }
  return static_cast<int64_t>(std::ceil(ratio * static_cast<double>(total_steps)));
}

StatusOr<LrSchedule> LrSchedule::create(const LrScheduleConfig& config) {
  if (!(std::isfinite(config.peak_lr) && config.peak_lr >= 0.0)) {
    return invalid_argument("peak_lr must be finite and >= 0, got " +
                            std::to_string(config.peak_lr));
  }
  if (config.total_steps <= 0) {
    return invalid_argument("total_steps must be > 0, got " + std::to_string(config.total_steps));
  }
  if (config.warmup_steps < 0 || config.warmup_steps > config.total_steps) {
    return invalid_argument(
        "warmup_steps must be in [0, total_steps = " + std::to_string(config.total_steps) +
        "], got " + std::to_string(config.warmup_steps));
  }
  if (!(config.min_lr_ratio >= 0.0 && config.min_lr_ratio <= 1.0)) {
    return invalid_argument("min_lr_ratio must be in [0, 1], got " +
                            std::to_string(config.min_lr_ratio));
  }
  LrSchedule s;
  s.config_ = config;
  return s;
}

double LrSchedule::factor(int64_t step) const {
  const int64_t s = std::max<int64_t>(step, 0);
  const int64_t warmup = config_.warmup_steps;
  if (s < warmup) {
    return static_cast<double>(s) / static_cast<double>(std::max<int64_t>(1, warmup));
  }
  const double progress =
      std::min(1.0, static_cast<double>(s - warmup) /
                        static_cast<double>(std::max<int64_t>(1, config_.total_steps - warmup)));
  const double r = config_.min_lr_ratio;
  switch (config_.kind) {
    case LrScheduleKind::kConstant:
      return 1.0;
    case LrScheduleKind::kLinear:
      return r + (1.0 - r) * (1.0 - progress);
    case LrScheduleKind::kCosine:
      return r + (1.0 - r) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  }
  return 1.0;
}

}  // namespace vila::train
