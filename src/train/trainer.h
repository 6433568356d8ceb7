// The training loop of `vila train` / `vila demo`: TrainConfig -> data, tokenizer, model,
// optimizer -> steps with gradient accumulation, clipping, the LR schedule, metrics, periodic
// evaluation and crash-safe checkpoints (train/run_dir.h) -> a final model in the released layout.
//
// Step s (1-based):  lr = schedule(s - 1); for each of grad_accum micro-batches: forward_backward
// with normalizer = trained tokens of all micro-batches of the step (so the loss and gradients are
// the mean over the whole step); clip to clip_grad_norm; AdamW; zero grads.
// Non-finite loss or gradient norm: on_nan "stop" returns an error naming the step and keeps the
// last checkpoint (never overwritten by a bad model); "skip" drops the step's update, counts it and
// goes on (stopping after 10 in a row).
// Checkpoint (every N steps and at the end): the released model layout + optimizer.safetensors +
// trainer_state.json {step, tokens, elapsed, schedule total, data stream state, losses so far}.
// Resume continues bit-for-bit: the same data, the same optimizer state, the same steps, so the
// loss sequence of a stopped-and-resumed run equals that of a run that never stopped (tested).
// Device (config.device): "cpu" runs VlmModel + AdamW over the ParamStore; "cuda" runs
// CudaVlmModel with parameters, gradients and fp32 moments on the GPU, copied to the ParamStore /
// AdamW for each checkpoint (train/step_engine.h). A CUDA resume continues the same steps, equal to
// an uninterrupted run up to the rounding of fp32 atomics (not bit for bit).
// The step budget: config.steps, or when 0, steps run until config.minutes of wall time are
// spent (the schedule then assumes the rate measured over the first steps; a time-limited run is
// not bit-reproducible in its length, only in its steps).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/eval.h"
#include "train/params.h"
#include "train/train_config.h"

namespace vila::train {

struct StepMetrics {
  int64_t step = 0;         // 1-based, after the update
  int64_t total_steps = 0;  // planned (may be an estimate under a time budget)
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  int64_t tokens = 0;        // trained tokens so far (targets counted)
  int64_t batch_tokens = 0;  // tokens (rows) of this step
  double tokens_per_s = 0;   // rows per second over the step
  double elapsed_s = 0;      // training time of this run, resumed time included
  double eta_s = 0;
  bool skipped = false;  // non-finite: update dropped
  uint64_t epoch = 0;
};

struct TrainerCallbacks {
  std::function<void(const StepMetrics&)> on_step;
  std::function<void(const std::string&)> on_log;  // one-line messages (data, checkpoints)
  std::function<void(int64_t step, const EvalResult&)> on_eval;
};

struct TrainerOptions {
  bool resume = false;     // continue from <output>/latest
  int64_t stop_after = 0;  // > 0: stop (with a checkpoint) after this many steps of this run
  // Fault injection for tests: called with the parameters after each step's backward, before
  // clipping (a test writes a NaN into a gradient to exercise the non-finite path). CPU only.
  std::function<void(int64_t step, ParamStore& params)> after_backward;
};

class Trainer {
 public:
  static StatusOr<std::unique_ptr<Trainer>> create(const TrainConfig& config,
                                                   const TrainerOptions& options,
                                                   TrainerCallbacks callbacks);
  ~Trainer();

  // Trains to the end of the budget, writes the final checkpoint; OK or the first error.
  Status run();

  // The losses of every step so far (resumed runs included: restored from the checkpoint).
  const std::vector<double>& losses() const;
  // The folder of the newest committed checkpoint (after run()).
  const std::string& last_checkpoint() const;
  int64_t step() const;
  int64_t parameter_count() const;
  int64_t trainable_count() const;

 private:
  Trainer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vila::train
