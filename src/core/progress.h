// Progress lines for long loops (training): a pure function that renders one line, and a small
// class that decides when to draw it. The library never prints on its own: the class writes to the
// std::ostream its caller passes.
//
// A line looks like
//    42% [########----------]  420/1000  loss 2.346  acc 0.8125  12.3k tok/s  0:01:02<0:01:25
// and, with an unknown total,
//   420/?  loss 2.346  12.3k tok/s  0:01:02
// ETA = elapsed * (total - step) / (step - start_step): the average pace since the bar started
// (a resumed run starts at start_step, not 0).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace vila {

// "h:mm:ss" (hours unbounded: "27:46:40"); "--:--:--" for a negative or non-finite value.
std::string format_duration(double seconds);
// 3 significant digits with k / M / G suffixes: 950 -> "950", 12345 -> "12.3k", 2.5e6 -> "2.5M".
std::string format_si(double value);
// A metric value: 4 significant digits ("2.346", "0.0003", "1.235e+05"), "nan" / "inf".
std::string format_metric(double value);

struct ProgressLine {
  int64_t step = 0;   // steps done
  int64_t total = 0;  // total steps; 0 or less: unknown (no bar, no percentage, no ETA)
  // Named values in display order, e.g. {"loss", 2.3456}.
  std::vector<std::pair<std::string, double>> values;
  double rate = -1.0;  // units per second (e.g. tokens/s); negative: not shown
  std::string rate_unit = "tok/s";
  double elapsed_s = 0.0;
  double eta_s = -1.0;  // negative: unknown ("--:--:--" when a total is known)
  int bar_width = 20;   // characters between the brackets
};

// The line, without '\r' or '\n'. Steps past the total are clamped to a full bar.
std::string render_progress(const ProgressLine& line);

// Draws a ProgressLine on a stream. On a terminal it redraws one line in place ('\r', padded with
// spaces over a longer previous line) at most every min_interval_s; elsewhere (a log file) it
// writes a plain line each time another `percent_step` % of the total is done, or every
// `plain_interval_s` seconds when the total is unknown. The first and last steps always draw.
class ProgressBar {
 public:
  struct Options {
    int64_t total = 0;
    int64_t start_step = 0;  // the step the run (re)started at
    bool tty = false;        // see stream_is_terminal()
    double min_interval_s = 0.1;
    int percent_step = 10;
    double plain_interval_s = 30.0;
    std::string rate_unit = "tok/s";
    int bar_width = 20;
  };

  // `out` must outlive the bar. The clock starts at the first update.
  ProgressBar(std::ostream* out, Options options);

  // `units` is the cumulative count behind the rate (tokens seen since start_step). Returns
  // whether a line was drawn. The first overload reads std::chrono::steady_clock; the second
  // takes the time in seconds from any fixed origin (tests).
  bool update(int64_t step, const std::vector<std::pair<std::string, double>>& values,
              double units);
  bool update_at(double now_s, int64_t step,
                 const std::vector<std::pair<std::string, double>>& values, double units);
  // Draws the last state again if it was not drawn and ends the line on a terminal.
  void finish();

  // The line the bar would draw for its last update.
  const std::string& last_line() const { return last_line_; }

  // isatty() of a file descriptor (e.g. STDERR_FILENO), for Options::tty.
  static bool stream_is_terminal(int fd);

 private:
  void draw(const std::string& line);

  std::ostream* out_;
  Options options_;
  bool started_ = false;
  double start_s_ = 0.0;
  double last_draw_s_ = 0.0;
  int64_t next_percent_ = 0;  // plain mode: the next percentage to print at
  size_t drawn_width_ = 0;    // tty: length of the line on screen
  bool pending_ = false;      // the last update was not drawn
  bool open_line_ = false;    // tty: a line without '\n' is on screen
  std::string last_line_;
};

}  // namespace vila
