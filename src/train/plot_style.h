// Shared sizes of the chart renderers (plot.cpp: layout and SVG; plot_raster.cpp: PNG), so that
// both formats draw the same figure. Pixels; fonts by their em size.
#pragma once

namespace vila::train::plot_style {

constexpr double kMarginLeft = 80;  // y tick labels and the rotated y label
constexpr double kMarginRight = 24;
constexpr double kPanelTop = 36;     // title band above each plot area
constexpr double kPanelBottom = 54;  // x tick labels and the x label
constexpr double kTitleBaseline = 24;
constexpr double kTickLength = 5;
constexpr double kYTickLabelGap = 8;        // right end of a y tick label to the axis
constexpr double kXTickLabelBaseline = 19;  // below the axis
constexpr double kXLabelBaseline = 42;      // below the axis
constexpr double kYLabelCenter = 17;        // the rotated y label's centre from the left edge
constexpr double kLegendInset = 8;          // legend box from the plot area's corner
constexpr double kLegendPad = 7;
constexpr double kLegendRow = 18;
constexpr double kLegendSwatch = 22;   // sample line length
constexpr double kLegendGap = 6;       // swatch to text
constexpr double kCharWidthEm = 0.62;  // mean glyph advance of a sans font, in em (estimate)

constexpr int kTickFont = 12;
constexpr int kLabelFont = 13;
constexpr int kTitleFont = 15;
constexpr int kLegendFont = 12;
// Baseline offset that centres a line of text vertically on a point, in em.
constexpr double kMiddleBaselineEm = 0.35;

// Line widths and the raw curve's opacity when a smoothed curve is drawn over it.
constexpr double kLineWidth = 1.5;
constexpr double kRawLineWidth = 1.0;
constexpr double kSmoothLineWidth = 2.0;
constexpr double kRawOpacity = 0.3;

// Colours (RGB hex).
constexpr unsigned kGridColor = 0xe6e6e6;
constexpr unsigned kAxisColor = 0x333333;
constexpr unsigned kTextColor = 0x222222;
constexpr unsigned kLegendBorder = 0xcccccc;

}  // namespace vila::train::plot_style
