// Line charts of training curves (loss, accuracy, ...) as SVG text or as a PNG image.
//
// A figure is a column of panels sharing the x axis kind (step, tokens, time); each panel has
// several series (one per run), drawn in the palette's colours in order, a legend, axis ticks at
// "nice" numbers (1, 2, 5 x 10^k; powers of ten on a log axis) and labels. With smoothing, the raw
// curve is drawn faint and its exponential moving average over it:
//   s_0 = 0,  s_t = w s_{t-1} + (1 - w) y_t,  shown: s_t / (1 - w^t)   (TensorBoard's debiased EMA)
// The PNG raster is drawn here (anti-aliased lines by distance to the segment) with text from a
// TrueType font through FreeType (Debian fonts-dejavu-core by default), and written with libpng.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "vision/image.h"

namespace vila::train {

struct PlotSeries {
  std::string label;      // legend text; empty: not in the legend
  std::vector<double> x;  // same length as y
  std::vector<double> y;
};

struct PlotPanel {
  std::string title;    // above the panel; may be empty
  std::string y_label;  // beside the y axis
  std::vector<PlotSeries> series;
};

struct PlotOptions {
  std::string x_label = "step";
  bool log_y = false;
  double smooth = 0.0;  // EMA weight w in [0, 1); 0 draws the raw curves only
  int width = 900;      // pixels (SVG user units)
  int panel_height = 420;
  // TrueType font for the PNG; empty: the first of kDefaultFonts that exists.
  std::string font_path;
};

// Fonts tried in order when PlotOptions::font_path is empty.
extern const char* const kDefaultFonts[];
extern const size_t kNumDefaultFonts;

struct PlotRect {
  double left = 0, top = 0, width = 0, height = 0;
  bool contains(double x, double y) const {
    return x >= left && x <= left + width && y >= top && y <= top + height;
  }
};

// Where one panel goes, in pixels, and its axis ranges in data units (the y range in data units
// even on a log axis). The axis range is the span of the outer ticks.
struct PanelGeometry {
  PlotRect area;    // the plot area inside the axes
  PlotRect legend;  // empty (width 0) when there is no legend
  double title_y = 0;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  bool log_y = false;
  std::vector<double> x_ticks, y_ticks;
  double x_step = 1, y_step = 1;  // linear tick spacing (log axes: 0)
  double px(double x) const;      // data -> pixel column
  double py(double y) const;      // data -> pixel row (grows downwards)
};

struct PlotLayout {
  int width = 0, height = 0;
  std::vector<PanelGeometry> panels;
};

// Geometry of a figure. InvalidArgument naming the panel when it has no drawable point (all
// points non-finite, or none positive on a log axis), or when the options are out of range.
StatusOr<PlotLayout> layout_plot(const std::vector<PlotPanel>& panels, const PlotOptions& options);

// The drawable points of a series: finite x and y, y > 0 on a log axis.
std::vector<std::pair<double, double>> plot_points(const PlotSeries& series, bool log_y);
// The debiased EMA of `y` with weight w in [0, 1) (see the top of this file).
std::vector<double> ema_smooth(const std::vector<double>& y, double weight);
// About `target` ticks at multiples of 1, 2 or 5 x 10^k, the first <= lo and the last >= hi.
std::vector<double> nice_ticks(double lo, double hi, int target);
// Ticks of a log axis covering [lo, hi] (lo > 0): powers of ten (every k-th decade when there are
// many), with 2 and 5 multiples added when the range spans at most two decades.
std::vector<double> log_ticks(double lo, double hi);
// A tick label: as many decimals as `step` needs; k / M / G for large round values; %g when
// step is 0 (log axes).
std::string format_tick(double value, double step);
// "#1f77b4", ...: the colour of series `index` (a 10-colour palette, repeating).
const char* series_color(size_t index);

// The figure as a standalone SVG document.
StatusOr<std::string> render_svg(const std::vector<PlotPanel>& panels, const PlotOptions& options);
// The figure as RGB pixels. NotFound when no font can be opened.
StatusOr<Image> render_raster(const std::vector<PlotPanel>& panels, const PlotOptions& options);
// Encodes 8-bit RGB as PNG and writes it (atomically) to `path`.
Status write_png(const Image& image, const std::string& path);
// Renders and writes `path`, the format chosen by its extension (.svg or .png, any case);
// InvalidArgument naming the extension otherwise.
Status write_plot(const std::vector<PlotPanel>& panels, const PlotOptions& options,
                  const std::string& path);

}  // namespace vila::train
