// What `vila train` and `vila demo` share: the progress bar and log lines on stderr, and the
// curves written from metrics.jsonl at the end.
#pragma once

#include <memory>
#include <string>

#include "core/progress.h"
#include "core/status.h"
#include "train/eval.h"
#include "train/trainer.h"

namespace vila::cli {

// Callbacks that draw a progress bar (step, loss, lr, tok/s, ETA) and print log lines and
// evaluation results on stderr. `bar` is created at the first step (the total is known then).
struct TrainConsole {
  std::unique_ptr<ProgressBar> bar;
  double rows = 0;  // tokens processed (all positions) since the bar started: the tok/s rate
  train::TrainerCallbacks callbacks();
};

// <run>/loss.png and <run>/loss.svg (loss, smoothed, over steps) and, when the run evaluated,
// <run>/accuracy.svg; returns the paths written, one per line.
StatusOr<std::string> write_run_curves(const std::string& run_dir);

// Prints an evaluation: "accuracy: NN.N % (k/n)" and the example answers.
void print_eval(const train::EvalResult& result, const std::string& label);

}  // namespace vila::cli
