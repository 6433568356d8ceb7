// Chart geometry (ranges, ticks, legend placement), smoothing, the SVG renderer and the output
// dispatch by extension. The raster renderer and PNG writer are in plot_raster.cpp.
#include "train/plot.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "core/mapped_file.h"
#include "train/plot_style.h"

namespace vila::train {
namespace {

using namespace plot_style;  // NOLINT: the shared sizes

constexpr int kMinWidth = 200;
constexpr int kMinPanelHeight = 150;
constexpr int kMaxPixels = 1 << 14;  // per side
constexpr int kTargetXTicks = 7;
constexpr int kTargetYTicks = 6;
constexpr int kMaxLogTicks = 8;
constexpr double kTickEpsilon = 1e-9;

const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

struct Range {
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  bool empty() const { return !(lo <= hi); }
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
};

// Widens a zero-width range so that ticks can be placed.
void widen(Range* r, bool log_axis) {
  if (r->hi > r->lo) return;
  if (log_axis) {
    r->lo /= 2;
    r->hi *= 2;
  } else if (r->lo == 0) {
    r->lo = -1;
    r->hi = 1;
  } else {
    const double d = std::abs(r->lo) * 0.1;
    r->lo -= d;
    r->hi += d;
  }
}

// Legend box size for the labelled series of a panel (text width estimated per character).
PlotRect legend_size(const PlotPanel& panel) {
  size_t rows = 0, chars = 0;
  for (const PlotSeries& s : panel.series) {
    if (s.label.empty()) continue;
    ++rows;
    chars = std::max(chars, s.label.size());
  }
  if (rows == 0) return {};
  PlotRect r;
  r.width = 2 * kLegendPad + kLegendSwatch + kLegendGap + chars * kCharWidthEm * kLegendFont;
  r.height = 2 * kLegendPad + rows * kLegendRow - (kLegendRow - kLegendFont);
  return r;
}

// Puts the legend into the corner of the plot area that covers the fewest data points.
void place_legend(const PlotPanel& panel, bool log_y, PanelGeometry* g) {
  PlotRect box = legend_size(panel);
  if (box.width == 0 || box.width + 2 * kLegendInset > g->area.width ||
      box.height + 2 * kLegendInset > g->area.height) {
    return;
  }
  const double left = g->area.left + kLegendInset;
  const double right = g->area.left + g->area.width - kLegendInset - box.width;
  const double top = g->area.top + kLegendInset;
  const double bottom = g->area.top + g->area.height - kLegendInset - box.height;
  const std::pair<double, double> corners[] = {
      {right, top}, {right, bottom}, {left, top}, {left, bottom}};
  size_t best_count = std::numeric_limits<size_t>::max();
  for (const auto& [x, y] : corners) {
    PlotRect candidate{x, y, box.width, box.height};
    size_t count = 0;
    for (const PlotSeries& s : panel.series) {
      for (const auto& [px, py] : plot_points(s, log_y)) {
        count += candidate.contains(g->px(px), g->py(py)) ? 1 : 0;
      }
    }
    if (count < best_count) {
      best_count = count;
      g->legend = candidate;
    }
  }
}

std::string hex_color(unsigned rgb) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "#%06x", rgb & 0xffffffu);
  return buf;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string svg_text(double x, double y, int size, const char* anchor, const std::string& text,
                     const std::string& extra = "") {
  return "<text x=\"" + fmt(x) + "\" y=\"" + fmt(y) + "\" font-size=\"" + std::to_string(size) +
         "\" text-anchor=\"" + anchor + "\"" + extra + ">" + xml_escape(text) + "</text>\n";
}

std::string svg_line(double x1, double y1, double x2, double y2, unsigned stroke) {
  return "<line x1=\"" + fmt(x1) + "\" y1=\"" + fmt(y1) + "\" x2=\"" + fmt(x2) + "\" y2=\"" +
         fmt(y2) + "\" stroke=\"" + hex_color(stroke) + "\"/>\n";
}

std::string svg_polyline(const PanelGeometry& g, const std::vector<double>& x,
                         const std::vector<double>& y, const char* cls, const char* color,
                         double width, double opacity, int panel) {
  std::string s = "<polyline class=\"" + std::string(cls) + "\" fill=\"none\" stroke=\"" + color +
                  "\" stroke-width=\"" + fmt(width) + "\" stroke-opacity=\"" + fmt(opacity) +
                  "\" stroke-linejoin=\"round\" clip-path=\"url(#clip" + std::to_string(panel) +
                  ")\" points=\"";
  for (size_t i = 0; i < y.size(); ++i) {
    if (i > 0) s += ' ';
    s.append(fmt(g.px(x[i]))).append(",").append(fmt(g.py(y[i])));
  }
  return s + "\"/>\n";
}

void svg_panel(const PlotPanel& panel, const PanelGeometry& g, const PlotOptions& options,
               int index, std::string* out) {
  const PlotRect& a = g.area;
  const double right = a.left + a.width, bottom = a.top + a.height;
  std::string& s = *out;
  s += "<g class=\"panel\">\n";
  if (!panel.title.empty()) {
    s += svg_text(a.left + a.width / 2, g.title_y, kTitleFont, "middle", panel.title);
  }
  s += "<clipPath id=\"clip" + std::to_string(index) + "\"><rect x=\"" + fmt(a.left) + "\" y=\"" +
       fmt(a.top) + "\" width=\"" + fmt(a.width) + "\" height=\"" + fmt(a.height) +
       "\"/></clipPath>\n";
  for (double t : g.y_ticks) {
    const double y = g.py(t);
    s += svg_line(a.left, y, right, y, kGridColor);
    s += svg_line(a.left - kTickLength, y, a.left, y, kAxisColor);
    s += svg_text(a.left - kYTickLabelGap, y + kTickFont * kMiddleBaselineEm, kTickFont, "end",
                  format_tick(t, g.y_step), " class=\"ytick\"");
  }
  for (double t : g.x_ticks) {
    const double x = g.px(t);
    s += svg_line(x, a.top, x, bottom, kGridColor);
    s += svg_line(x, bottom, x, bottom + kTickLength, kAxisColor);
    s += svg_text(x, bottom + kXTickLabelBaseline, kTickFont, "middle", format_tick(t, g.x_step),
                  " class=\"xtick\"");
  }
  s += "<rect x=\"" + fmt(a.left) + "\" y=\"" + fmt(a.top) + "\" width=\"" + fmt(a.width) +
       "\" height=\"" + fmt(a.height) + "\" fill=\"none\" stroke=\"" + hex_color(kAxisColor) +
       "\"/>\n";
  s += svg_text(a.left + a.width / 2, bottom + kXLabelBaseline, kLabelFont, "middle",
                options.x_label);
  const double cy = a.top + a.height / 2;
  s += "<text transform=\"translate(" + fmt(kYLabelCenter) + "," + fmt(cy) +
       ") rotate(-90)\" font-size=\"" + std::to_string(kLabelFont) + "\" text-anchor=\"middle\">" +
       xml_escape(panel.y_label) + "</text>\n";
  const bool smooth = options.smooth > 0;
  for (size_t i = 0; i < panel.series.size(); ++i) {
    std::vector<double> x, y;
    for (const auto& [px, py] : plot_points(panel.series[i], g.log_y)) {
      x.push_back(px);
      y.push_back(py);
    }
    const char* color = series_color(i);
    if (smooth) {
      s += svg_polyline(g, x, y, "raw", color, kRawLineWidth, kRawOpacity, index);
      s += svg_polyline(g, x, ema_smooth(y, options.smooth), "series", color, kSmoothLineWidth, 1.0,
                        index);
    } else {
      s += svg_polyline(g, x, y, "series", color, kLineWidth, 1.0, index);
    }
  }
  if (g.legend.width > 0) {
    const PlotRect& l = g.legend;
    s += "<rect class=\"legend\" x=\"" + fmt(l.left) + "\" y=\"" + fmt(l.top) + "\" width=\"" +
         fmt(l.width) + "\" height=\"" + fmt(l.height) +
         "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"" + hex_color(kLegendBorder) + "\"/>\n";
    double row_y = l.top + kLegendPad + kLegendFont / 2.0;
    for (size_t i = 0; i < panel.series.size(); ++i) {
      if (panel.series[i].label.empty()) continue;
      const double x0 = l.left + kLegendPad;
      s += "<line x1=\"" + fmt(x0) + "\" y1=\"" + fmt(row_y) + "\" x2=\"" +
           fmt(x0 + kLegendSwatch) + "\" y2=\"" + fmt(row_y) + "\" stroke=\"" + series_color(i) +
           "\" stroke-width=\"2\"/>\n";
      s += svg_text(x0 + kLegendSwatch + kLegendGap, row_y + kLegendFont * kMiddleBaselineEm,
                    kLegendFont, "start", panel.series[i].label);
      row_y += kLegendRow;
    }
  }
  s += "</g>\n";
}

}  // namespace

const char* const kDefaultFonts[] = {
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  // Debian fonts-dejavu-core
    "/usr/share/fonts/TTF/DejaVuSans.ttf",              // Arch
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",           // Fedora
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
};
const size_t kNumDefaultFonts = sizeof(kDefaultFonts) / sizeof(kDefaultFonts[0]);

double PanelGeometry::px(double x) const {
  return area.left + (x - x_min) / (x_max - x_min) * area.width;
}

double PanelGeometry::py(double y) const {
  const double t =
      log_y ? (std::log10(y) - std::log10(y_min)) / (std::log10(y_max) - std::log10(y_min))
            : (y - y_min) / (y_max - y_min);
  return area.top + (1.0 - t) * area.height;
}

const char* series_color(size_t index) {
  return kPalette[index % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

std::vector<std::pair<double, double>> plot_points(const PlotSeries& series, bool log_y) {
  std::vector<std::pair<double, double>> points;
  const size_t n = std::min(series.x.size(), series.y.size());
  for (size_t i = 0; i < n; ++i) {
    const double x = series.x[i], y = series.y[i];
    if (std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0)) points.emplace_back(x, y);
  }
  return points;
}

std::vector<double> ema_smooth(const std::vector<double>& y, double weight) {
  std::vector<double> out(y.size());
  double acc = 0, debias = 1;
  for (size_t i = 0; i < y.size(); ++i) {
    acc = weight * acc + (1 - weight) * y[i];
    debias *= weight;
    out[i] = acc / (1 - debias);
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  Range r{lo, hi};
  widen(&r, false);
  const double rough = (r.hi - r.lo) / std::max(target - 1, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(rough)));
  const double residual = rough / mag;
  const double step = mag * (residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 5 ? 5 : 10);
  const double first = std::floor(r.lo / step + kTickEpsilon);
  const double last = std::ceil(r.hi / step - kTickEpsilon);
  std::vector<double> ticks;
  for (double k = first; k <= last; k += 1) {
    const double t = k * step;
    ticks.push_back(std::abs(t) < step * kTickEpsilon ? 0.0 : t);
  }
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  Range r{lo, hi};
  widen(&r, true);
  const int d0 = static_cast<int>(std::floor(std::log10(r.lo) + kTickEpsilon));
  int d1 = static_cast<int>(std::ceil(std::log10(r.hi) - kTickEpsilon));
  if (d1 <= d0) d1 = d0 + 1;
  std::vector<double> ticks;
  if (d1 - d0 <= 2) {
    for (int d = d0; d < d1; ++d) {
      for (double m : {1.0, 2.0, 5.0}) ticks.push_back(m * std::pow(10.0, d));
    }
    ticks.push_back(std::pow(10.0, d1));
    return ticks;
  }
  const int every = (d1 - d0 + kMaxLogTicks - 1) / kMaxLogTicks;
  int d = d0;
  for (; d < d1; d += every) ticks.push_back(std::pow(10.0, d));
  ticks.push_back(std::pow(10.0, d));
  return ticks;
}

std::string format_tick(double value, double step) {
  char buf[48];
  if (step <= 0) {
    std::snprintf(buf, sizeof(buf), "%g", value);
    return buf;
  }
  if (std::abs(value) < step * kTickEpsilon) return "0";
  const char* suffix = "";
  double unit = 1;
  if (step >= 1e3) {
    const double a = std::abs(value);
    unit = a >= 1e9 ? 1e9 : a >= 1e6 ? 1e6 : a >= 1e3 ? 1e3 : 1;
    suffix = unit == 1e9 ? "G" : unit == 1e6 ? "M" : unit == 1e3 ? "k" : "";
  }
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step / unit) - 1e-6)));
  constexpr int kMaxDecimals = 8;
  if (decimals > kMaxDecimals) {
    std::snprintf(buf, sizeof(buf), "%g", value);
    return buf;
  }
  std::snprintf(buf, sizeof(buf), "%.*f%s", decimals, value / unit, suffix);
  return buf;
}

StatusOr<PlotLayout> layout_plot(const std::vector<PlotPanel>& panels, const PlotOptions& options) {
  if (panels.empty()) return invalid_argument("plot: no panel to draw");
  if (options.width < kMinWidth || options.width > kMaxPixels) {
    return invalid_argument("plot: width " + std::to_string(options.width) + " out of range [" +
                            std::to_string(kMinWidth) + ", " + std::to_string(kMaxPixels) + "]");
  }
  if (options.panel_height < kMinPanelHeight ||
      static_cast<int64_t>(options.panel_height) * panels.size() > kMaxPixels) {
    return invalid_argument("plot: panel height " + std::to_string(options.panel_height) +
                            " out of range (at least " + std::to_string(kMinPanelHeight) +
                            ", figure at most " + std::to_string(kMaxPixels) + " pixels high)");
  }
  if (!(options.smooth >= 0 && options.smooth < 1)) {
    return invalid_argument("plot: smoothing weight " + std::to_string(options.smooth) +
                            " must be in [0, 1)");
  }
  // One x range for the whole figure, one y range per panel.
  Range x_range;
  std::vector<Range> y_ranges(panels.size());
  for (size_t p = 0; p < panels.size(); ++p) {
    for (const PlotSeries& s : panels[p].series) {
      for (const auto& [x, y] : plot_points(s, options.log_y)) {
        x_range.add(x);
        y_ranges[p].add(y);
      }
    }
    if (y_ranges[p].empty()) {
      return invalid_argument("plot: panel '" + panels[p].y_label + "' has no point to draw" +
                              (options.log_y ? " (a log axis needs values > 0)" : ""));
    }
  }
  PlotLayout layout;
  layout.width = options.width;
  layout.height = options.panel_height * static_cast<int>(panels.size());
  const std::vector<double> x_ticks = nice_ticks(x_range.lo, x_range.hi, kTargetXTicks);
  for (size_t p = 0; p < panels.size(); ++p) {
    PanelGeometry g;
    const double top = static_cast<double>(p) * options.panel_height;
    g.area = {kMarginLeft, top + kPanelTop, options.width - kMarginLeft - kMarginRight,
              options.panel_height - kPanelTop - kPanelBottom};
    g.title_y = top + kTitleBaseline;
    g.x_ticks = x_ticks;
    g.x_min = x_ticks.front();
    g.x_max = x_ticks.back();
    g.x_step = x_ticks[1] - x_ticks[0];
    g.log_y = options.log_y;
    g.y_ticks = options.log_y ? log_ticks(y_ranges[p].lo, y_ranges[p].hi)
                              : nice_ticks(y_ranges[p].lo, y_ranges[p].hi, kTargetYTicks);
    g.y_min = g.y_ticks.front();
    g.y_max = g.y_ticks.back();
    g.y_step = options.log_y ? 0.0 : g.y_ticks[1] - g.y_ticks[0];
    place_legend(panels[p], options.log_y, &g);
    layout.panels.push_back(std::move(g));
  }
  return layout;
}

StatusOr<std::string> render_svg(const std::vector<PlotPanel>& panels, const PlotOptions& options) {
  VILA_ASSIGN_OR_RETURN(PlotLayout layout, layout_plot(panels, options));
  const std::string w = std::to_string(layout.width), h = std::to_string(layout.height);
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"" + h +
       "\" viewBox=\"0 0 " + w + " " + h +
       "\" font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\" fill=\"" +
       hex_color(kTextColor) + "\">\n";
  s += "<rect width=\"" + w + "\" height=\"" + h + "\" fill=\"white\"/>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    svg_panel(panels[p], layout.panels[p], options, static_cast<int>(p), &s);
  }
  return s + "</svg>\n";
}

Status write_plot(const std::vector<PlotPanel>& panels, const PlotOptions& options,
                  const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".svg") {
    VILA_ASSIGN_OR_RETURN(std::string svg, render_svg(panels, options));
    return write_file_atomic(path, svg.data(), svg.size());
  }
  if (ext == ".png") {
    VILA_ASSIGN_OR_RETURN(Image image, render_raster(panels, options));
    return write_png(image, path);
  }
  return invalid_argument("plot: " + path + ": unknown output extension '" + ext +
                          "' (use .png or .svg)");
}

}  // namespace vila::train
