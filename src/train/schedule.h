// Learning-rate schedules, as Hugging Face transformers' get_*_schedule_with_warmup build them
// (LambdaLR over the optimizer step index s = number of steps already taken, 0 for the first).
//
//   warmup (s < W):      f(s) = s / max(1, W)                       (linear from 0; f(0) = 0)
//   after warmup, progress p = min(1, (s - W) / max(1, T - W)):
//     constant:          f = 1
//     linear:            f = r + (1 - r) (1 - p)
//     cosine:            f = r + (1 - r) 0.5 (1 + cos(pi p))
//   lr(s) = peak_lr * f(s), r = min_lr_ratio (HF's min_lr_rate; 0 gives HF's plain schedules).
// Past the last step (s >= T) the factor stays at its end value r (HF's cosine would rise again).
// VILA trains with warmup_ratio 0.03 and cosine: W = ceil(0.03 T) (warmup_steps_from_ratio).
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace vila::train {

enum class LrScheduleKind { kConstant, kLinear, kCosine };
const char* lr_schedule_name(LrScheduleKind kind);  // "constant" | "linear" | "cosine"
// "constant" (also "constant_with_warmup"), "linear", "cosine" (also "cosine_with_min_lr").
// InvalidArgument "lr_scheduler_type: unknown schedule 'x' ..." otherwise.
StatusOr<LrScheduleKind> parse_lr_schedule(std::string_view name);

struct LrScheduleConfig {
  LrScheduleKind kind = LrScheduleKind::kCosine;
  double peak_lr = 0.0;       // learning_rate
  int64_t warmup_steps = 0;   // W
  int64_t total_steps = 0;    // T, optimizer steps of the whole run
  double min_lr_ratio = 0.0;  // r, the final lr as a fraction of peak_lr
};

// W = ceil(ratio * T), as HF TrainingArguments.get_warmup_steps. InvalidArgument naming
// "warmup_ratio" unless 0 <= ratio <= 1, or "total_steps" unless T > 0.
StatusOr<int64_t> warmup_steps_from_ratio(double ratio, int64_t total_steps);

class LrSchedule {
 public:
  // InvalidArgument naming the field: peak_lr finite and >= 0, total_steps > 0,
  // 0 <= warmup_steps <= total_steps, min_lr_ratio in [0, 1].
  static StatusOr<LrSchedule> create(const LrScheduleConfig& config);

  double factor(int64_t step) const;  // f(s); s < 0 counts as 0
  double lr(int64_t step) const { return config_.peak_lr * factor(step); }
  const LrScheduleConfig& config() const { return config_; }

 private:
  LrScheduleConfig config_;
};

}  // namespace vila::train
