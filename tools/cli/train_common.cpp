#include "train_common.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "train/metrics.h"
#include "train/plot.h"

namespace vila::cli {

namespace fs = std::filesystem;

train::TrainerCallbacks TrainConsole::callbacks() {
  train::TrainerCallbacks cb;
  cb.on_step = [this](const train::StepMetrics& m) {
    if (!bar) {
      ProgressBar::Options o;
      o.total = m.total_steps;
      o.start_step = m.step - 1;
      o.tty = ProgressBar::stream_is_terminal(STDERR_FILENO);
      bar = std::make_unique<ProgressBar>(&std::cerr, o);
    }
    rows += static_cast<double>(m.batch_tokens);
    bar->update(m.step, {{"loss", m.loss}, {"lr", m.lr}, {"|g|", m.grad_norm}}, rows);
    if (m.step == m.total_steps) bar->finish();
  };
  cb.on_log = [this](const std::string& line) {
    if (bar) bar->finish();
    std::fprintf(stderr, "%s\n", line.c_str());
  };
  cb.on_eval = [this](int64_t step, const train::EvalResult& r) {
    if (bar) bar->finish();
    std::fprintf(stderr, "eval at step %lld: accuracy %.1f %% (%lld/%lld)\n",
                 static_cast<long long>(step), 100.0 * r.accuracy(),
                 static_cast<long long>(r.correct), static_cast<long long>(r.total));
  };
  return cb;
}

StatusOr<std::string> write_run_curves(const std::string& run_dir) {
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();
  VILA_ASSIGN_OR_RETURN(train::MetricsLog log, train::MetricsLog::read(metrics_path));
  std::string written;
  VILA_ASSIGN_OR_RETURN(train::MetricsSeries loss, log.series("loss", "step"));
  train::PlotPanel panel;
  panel.title = "training loss";
  panel.y_label = "loss";
  panel.series.push_back({"loss", loss.x, loss.y});
  train::PlotOptions options;
  options.smooth = 0.9;
  // The SVG needs nothing installed; the PNG needs a TrueType font, and its absence costs the
  // picture, not the run.
  const std::string svg = (fs::path(run_dir) / "loss.svg").string();
  VILA_RETURN_IF_ERROR(train::write_plot({panel}, options, svg));
  written += svg + "\n";
  const std::string png = (fs::path(run_dir) / "loss.png").string();
  if (Status s = train::write_plot({panel}, options, png); s.ok()) {
    written += png + "\n";
  } else {
    std::fprintf(stderr, "warning: no PNG curve: %s\n", s.message().c_str());
  }
  StatusOr<train::MetricsSeries> acc = log.series("eval_accuracy", "step");
  if (acc.ok() && !acc->y.empty()) {
    train::PlotPanel ap;
    ap.title = "held-out accuracy";
    ap.y_label = "accuracy";
    ap.series.push_back({"accuracy", acc->x, acc->y});
    const std::string path = (fs::path(run_dir) / "accuracy.svg").string();
    VILA_RETURN_IF_ERROR(train::write_plot({ap}, train::PlotOptions{}, path));
    written += path + "\n";
  }
  return written;
}

void print_eval(const train::EvalResult& result, const std::string& label) {
  for (const train::EvalExample& e : result.examples) {
    std::printf("  %s  expected: %-12s answer: %s%s\n", fs::path(e.image).filename().c_str(),
                e.expected.c_str(), e.answer.c_str(), e.correct ? "" : "   (wrong)");
  }
  std::printf("accuracy: %.1f %% (%lld/%lld %s, %.1f s)\n", 100.0 * result.accuracy(),
              static_cast<long long>(result.correct), static_cast<long long>(result.total),
              label.c_str(), result.seconds);
}

}  // namespace vila::cli
