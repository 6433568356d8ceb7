// Progress line rendering and redraw policy (see progress.h).
#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>

namespace vila {
namespace {

constexpr int kSecondsPerMinute = 60;
constexpr int kSecondsPerHour = 3600;
constexpr double kThousand = 1000.0;
constexpr int kPercent = 100;

std::string printf_string(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, value);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const long long total = std::llround(seconds);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", total / kSecondsPerHour,
                total % kSecondsPerHour / kSecondsPerMinute, total % kSecondsPerMinute);
  return buf;
}

std::string format_si(double value) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value < 0 ? "-inf" : "inf");
  static const char* const kSuffixes[] = {"", "k", "M", "G", "T", "P"};
  double v = value;
  for (const char* suffix : kSuffixes) {
    // %.3g of a value that rounds up to 1000 switches to exponent form: go to the next suffix.
    const std::string s = printf_string("%.3g", v);
    if (s.find('e') == std::string::npos) return s + suffix;
    v /= kThousand;
  }
  return printf_string("%.3g", value);
}

std::string format_metric(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  return printf_string("%.4g", value);
}

std::string render_progress(const ProgressLine& line) {
  std::string s;
  const bool known_total = line.total > 0;
  if (known_total) {
    const double fraction =
        std::clamp(static_cast<double>(line.step) / static_cast<double>(line.total), 0.0, 1.0);
    const int width = std::max(line.bar_width, 0);
    const int filled = static_cast<int>(std::floor(fraction * width));
    char pct[8];
    std::snprintf(pct, sizeof(pct), "%3d%%", static_cast<int>(std::floor(fraction * kPercent)));
    s += pct;
    if (width > 0) s += " [" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
    const std::string total = std::to_string(line.total);
    std::string step = std::to_string(line.step);
    if (step.size() < total.size()) step.insert(0, total.size() - step.size(), ' ');
    s.append("  ").append(step).append("/").append(total);
  } else {
    s += std::to_string(line.step) + "/?";
  }
  for (const auto& [name, value] : line.values)
    s.append("  ").append(name).append(" ").append(format_metric(value));
  if (line.rate >= 0)
    s.append("  ").append(format_si(line.rate)).append(" ").append(line.rate_unit);
  s.append("  ").append(format_duration(line.elapsed_s));
  if (known_total) s.append("<").append(format_duration(line.eta_s));
  return s;
}

ProgressBar::ProgressBar(std::ostream* out, Options options)
    : out_(out), options_(std::move(options)) {}

bool ProgressBar::stream_is_terminal(int fd) { return ::isatty(fd) == 1; }

bool ProgressBar::update(int64_t step, const std::vector<std::pair<std::string, double>>& values,
                         double units) {
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return update_at(now, step, values, units);
}

bool ProgressBar::update_at(double now_s, int64_t step,
                            const std::vector<std::pair<std::string, double>>& values,
                            double units) {
  const bool first = !started_;
  if (first) {
    started_ = true;
    start_s_ = now_s;
  }
  const bool known_total = options_.total > 0;
  ProgressLine line;
  line.step = step;
  line.total = options_.total;
  line.values = values;
  line.rate_unit = options_.rate_unit;
  line.bar_width = options_.bar_width;
  line.elapsed_s = std::max(now_s - start_s_, 0.0);
  if (line.elapsed_s > 0) line.rate = units / line.elapsed_s;
  const int64_t done = step - options_.start_step;
  if (known_total && step >= options_.total) {
    line.eta_s = 0.0;
  } else if (known_total && done > 0) {
    line.eta_s = line.elapsed_s * static_cast<double>(options_.total - step) / done;
  }
  last_line_ = render_progress(line);

  const bool last = known_total && step >= options_.total;
  bool draw_now = first || last;
  if (options_.tty) {
    draw_now = draw_now || now_s - last_draw_s_ >= options_.min_interval_s;
  } else if (known_total) {
    const int64_t percent = std::max<int64_t>(step, 0) * kPercent / options_.total;
    draw_now = draw_now || percent >= next_percent_;
    if (draw_now) {
      const int64_t every = std::max(options_.percent_step, 1);
      next_percent_ = (percent / every + 1) * every;
    }
  } else {
    draw_now = draw_now || now_s - last_draw_s_ >= options_.plain_interval_s;
  }
  pending_ = !draw_now;
  if (draw_now) {
    last_draw_s_ = now_s;
    draw(last_line_);
  }
  return draw_now;
}

void ProgressBar::draw(const std::string& line) {
  if (options_.tty) {
    *out_ << '\r' << line;
    if (line.size() < drawn_width_) *out_ << std::string(drawn_width_ - line.size(), ' ');
    drawn_width_ = line.size();
    open_line_ = true;
  } else {
    *out_ << line << '\n';
  }
  out_->flush();
}

void ProgressBar::finish() {
  if (pending_) draw(last_line_);
  pending_ = false;
  if (open_line_) {
    *out_ << '\n';
    out_->flush();
    open_line_ = false;
    drawn_width_ = 0;
  }
}

}  // namespace vila
