// Progress lines (core/progress.h): duration / number formatting, the rendered line at 0, part and
// all of the total and with an unknown total, and the redraw policy on a terminal and in a log.
#include "core/progress.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace vila {
namespace {

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

TEST(Progress, FormatDuration) {
  EXPECT_EQ(format_duration(0), "0:00:00");
  EXPECT_EQ(format_duration(59.6), "0:01:00");
  EXPECT_EQ(format_duration(3661), "1:01:01");
  EXPECT_EQ(format_duration(100000), "27:46:40");
  EXPECT_EQ(format_duration(-1), "--:--:--");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::quiet_NaN()), "--:--:--");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "--:--:--");
}

TEST(Progress, FormatNumbers) {
  EXPECT_EQ(format_si(950), "950");
  EXPECT_EQ(format_si(12345), "12.3k");
  EXPECT_EQ(format_si(2.5e6), "2.5M");
  EXPECT_EQ(format_si(999999), "1M");
  EXPECT_EQ(format_si(0.5), "0.5");
  EXPECT_EQ(format_metric(2.34567), "2.346");
  EXPECT_EQ(format_metric(0.0003), "0.0003");
  EXPECT_EQ(format_metric(std::nan("")), "nan");
  EXPECT_EQ(format_metric(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(Progress, LineAtZeroPartAndTotal) {
  ProgressLine line;
  line.total = 1000;
  line.bar_width = 10;
  line.values = {{"loss", 2.34567}, {"acc", 0.8125}};
  const std::string zero = render_progress(line);
  EXPECT_EQ(zero.rfind("  0% [----------]     0/1000  loss 2.346  acc 0.8125", 0), 0u) << zero;
  EXPECT_NE(zero.find("0:00:00<--:--:--"), std::string::npos) << zero;
  EXPECT_EQ(zero.find("tok/s"), std::string::npos) << zero;  // no rate given

  line.step = 420;
  line.rate = 12345;
  line.elapsed_s = 62;
  line.eta_s = 85.6;
  EXPECT_EQ(render_progress(line),
            " 42% [####------]   420/1000  loss 2.346  acc 0.8125  12.3k tok/s  0:01:02<0:01:26");

  line.step = 1000;
  line.eta_s = 0;
  const std::string done = render_progress(line);
  EXPECT_EQ(done.rfind("100% [##########]  1000/1000", 0), 0u) << done;
  EXPECT_NE(done.find("<0:00:00"), std::string::npos) << done;

  line.step = 1200;  // past the end: clamped
  EXPECT_EQ(render_progress(line).rfind("100% [##########]  1200/1000", 0), 0u);
}

TEST(Progress, UnknownTotal) {
  ProgressLine line;
  line.step = 420;
  line.values = {{"loss", 1.5}};
  line.rate = 950;
  line.elapsed_s = 3600;
  EXPECT_EQ(render_progress(line), "420/?  loss 1.5  950 tok/s  1:00:00");
}

TEST(Progress, TerminalRedrawsInPlaceAtMostTenTimesASecond) {
  std::ostringstream out;
  ProgressBar::Options options;
  options.total = 100;
  options.tty = true;
  ProgressBar bar(&out, options);
  EXPECT_TRUE(bar.update_at(10.0, 1, {{"loss", 3.0}}, 100));  // the first update always draws
  EXPECT_FALSE(bar.update_at(10.05, 2, {{"loss", 2.0}}, 200));
  EXPECT_TRUE(bar.update_at(10.2, 3, {{"loss", 1.0}}, 300));
  EXPECT_EQ(count(out.str(), "\r"), 2u);
  EXPECT_EQ(count(out.str(), "\n"), 0u);
  // 300 tokens in 0.2 s; 3 steps in 0.2 s, 97 to go: 6.5 s.
  EXPECT_NE(bar.last_line().find("1.5k tok/s"), std::string::npos) << bar.last_line();
  EXPECT_NE(bar.last_line().find("<0:00:06"), std::string::npos) << bar.last_line();
  EXPECT_FALSE(bar.update_at(10.25, 4, {{"loss", 0.5}}, 400));
  bar.finish();  // draws the pending state and ends the line
  EXPECT_EQ(count(out.str(), "\r"), 3u);
  EXPECT_EQ(out.str().back(), '\n');
  EXPECT_NE(out.str().find("loss 0.5"), std::string::npos);
}

TEST(Progress, TerminalPadsOverALongerLine) {
  std::ostringstream out;
  ProgressBar::Options options;
  options.tty = true;
  ProgressBar bar(&out, options);
  bar.update_at(0, 1, {{"loss", 123.456}, {"accuracy", 0.5}}, 0);
  const size_t first = bar.last_line().size();
  bar.update_at(1, 2, {{"loss", 1}}, 0);
  const std::string s = out.str();
  const std::string second = s.substr(s.rfind('\r') + 1);
  EXPECT_EQ(second.size(), first);  // padded with spaces to cover the first line
  EXPECT_EQ(second.back(), ' ');
}

TEST(Progress, LogFileGetsALineEveryTenPercent) {
  std::ostringstream out;
  ProgressBar::Options options;
  options.total = 100;
  options.percent_step = 10;
  ProgressBar bar(&out, options);
  int drawn = 0;
  for (int step = 1; step <= 100; ++step)
    drawn += bar.update_at(step * 0.5, step, {}, step) ? 1 : 0;
  bar.finish();
  EXPECT_EQ(drawn, 11);  // step 1, then 10, 20, ..., 100
  EXPECT_EQ(count(out.str(), "\n"), 11u);
  EXPECT_EQ(count(out.str(), "\r"), 0u);
  EXPECT_NE(out.str().find("100% ["), std::string::npos);
}

TEST(Progress, LogFileWithUnknownTotalUsesTime) {
  std::ostringstream out;
  ProgressBar::Options options;
  options.plain_interval_s = 30;
  ProgressBar bar(&out, options);
  int drawn = 0;
  for (int step = 0; step < 100; ++step) drawn += bar.update_at(step, step, {}, 0) ? 1 : 0;
  EXPECT_EQ(drawn, 4);  // t = 0, 30, 60, 90
  bar.finish();
  EXPECT_EQ(count(out.str(), "\n"), 5u);  // + the pending last state
  EXPECT_NE(out.str().find("99/?"), std::string::npos);
}

TEST(Progress, EtaOfAResumedRunCountsOnlyItsOwnSteps) {
  std::ostringstream out;
  ProgressBar::Options options;
  options.total = 100;
  options.start_step = 50;
  ProgressBar bar(&out, options);
  bar.update_at(0, 50, {}, 0);
  EXPECT_NE(bar.last_line().find("<--:--:--"), std::string::npos) << bar.last_line();
  bar.update_at(10, 60, {}, 0);
  EXPECT_NE(bar.last_line().find("0:00:10<0:00:40"), std::string::npos) << bar.last_line();
}

}  // namespace
}  // namespace vila
