// vila plot: training curves from metrics JSONL files (train/metrics.h) as PNG or SVG
// (train/plot.h). One panel per --y key, one curve per --metrics file (runs overlaid for
// comparisons), labelled by --label or by the file's folder name.
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "train/metrics.h"
#include "train/plot.h"

namespace vila::cli {

namespace {

struct PlotArgs {
  std::vector<std::string> metrics;
  std::vector<std::string> labels;
  std::vector<std::string> y_keys;
  std::string x_key = train::kStepKey;
  double smooth = 0.0;
  bool log_y = false;
  std::string output;
  std::string title;
  int width = 0;
  int panel_height = 0;
  std::string font;
};

// The x axis title for an x key.
std::string x_label(const std::string& x_key) {
  if (x_key == train::kTimeKey) return "time (s)";
  return x_key;
}

// A run's default label: its folder ("runs/a/metrics.jsonl" -> "a"), else the file's stem.
std::string default_label(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string parent = p.parent_path().filename().string();
  return parent.empty() || parent == "." ? p.stem().string() : parent;
}

int run_plot(const PlotArgs& args) {
  if (!args.labels.empty() && args.labels.size() != args.metrics.size()) {
    return report_error(invalid_argument("plot: " + std::to_string(args.labels.size()) +
                                         " --label for " + std::to_string(args.metrics.size()) +
                                         " --metrics files (give one per file or none)"));
  }
  // Check the output format before reading anything.
  std::string ext = std::filesystem::path(args.output).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext != ".png" && ext != ".svg") {
    return report_error(invalid_argument("plot: " + args.output + ": unknown output extension '" +
                                         ext + "' (use .png or .svg)"));
  }
  const std::vector<std::string> y_keys =
      args.y_keys.empty() ? std::vector<std::string>{"loss"} : args.y_keys;
  std::vector<train::PlotPanel> panels(y_keys.size());
  for (size_t k = 0; k < y_keys.size(); ++k) {
    panels[k].y_label = y_keys[k];
    if (k == 0) panels[k].title = args.title;
  }
  size_t points = 0;
  for (size_t f = 0; f < args.metrics.size(); ++f) {
    const std::string& path = args.metrics[f];
    StatusOr<train::MetricsLog> log = train::MetricsLog::read(path);
    if (!log.ok()) return report_error(log.status());
    if (log->skipped_lines() > 0) {
      std::fprintf(stderr, "note: %s: %zu unreadable line(s) skipped (first: %s)\n", path.c_str(),
                   log->skipped_lines(), log->first_error().c_str());
    }
    const std::string label = args.labels.empty() ? default_label(path) : args.labels[f];
    for (size_t k = 0; k < y_keys.size(); ++k) {
      StatusOr<train::MetricsSeries> series = log->series(y_keys[k], args.x_key);
      if (!series.ok()) return report_error(series.status());
      points += series->size();
      panels[k].series.push_back({label, std::move(series->x), std::move(series->y)});
    }
  }
  train::PlotOptions options;
  options.x_label = x_label(args.x_key);
  options.log_y = args.log_y;
  options.smooth = args.smooth;
  if (args.width > 0) options.width = args.width;
  if (args.panel_height > 0) options.panel_height = args.panel_height;
  options.font_path = args.font;
  Status written = train::write_plot(panels, options, args.output);
  if (!written.ok()) return report_error(written);
  std::printf("wrote %s: %zu panel(s), %zu run(s), %zu points\n", args.output.c_str(),
              panels.size(), args.metrics.size(), points);
  return 0;
}

}  // namespace

void add_plot_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plot", "Plot training curves from metrics JSONL files as PNG or SVG (by --output's name)");
  cmd->add_option("--metrics", args->metrics,
                  "A metrics.jsonl file; repeat to overlay runs (one curve each)")
      ->required();
  cmd->add_option("--label", args->labels,
                  "Legend label of each --metrics file, in order (default: its folder's name)");
  cmd->add_option("--y", args->y_keys, "Key to plot, one panel each; repeatable (default: loss)");
  cmd->add_option("--x", args->x_key, "x axis: step, tokens or time")
      ->check(CLI::IsMember({train::kStepKey, train::kTokensKey, train::kTimeKey}));
  cmd->add_option("--smooth", args->smooth,
                  "Exponential moving average weight in [0, 1), drawn over the faint raw curve")
      ->check(CLI::Range(0.0, 0.9999));
  cmd->add_flag("--log-y", args->log_y, "Logarithmic y axis");
  cmd->add_option("--output", args->output, "Output file: .png or .svg")->required();
  cmd->add_option("--title", args->title, "Title above the first panel");
  cmd->add_option("--width", args->width, "Figure width in pixels (default 900)");
  cmd->add_option("--panel-height", args->panel_height, "Height of each panel (default 420)");
  cmd->add_option("--font", args->font,
                  "TrueType font for PNG text (default: DejaVu Sans from fonts-dejavu-core)");
  cmd->callback([args, &exit_code] { exit_code = run_plot(*args); });
}

}  // namespace vila::cli
