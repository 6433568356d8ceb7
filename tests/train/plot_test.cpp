// Charts (train/plot.h) and `vila plot`: nice ticks and tick labels, smoothing, SVG structure
// (polyline point counts, axis range), PNG decoding to the right size with curve pixels where
// the geometry says, and clear errors naming the file, key or extension.
#include "train/plot.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "../common/temp_dir.h"
#include "vision/image.h"

namespace vila::train {
namespace {

using vila::testing::TempDir;

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

// The number of "x,y" pairs in each points="..." attribute, in document order.
std::vector<size_t> polyline_sizes(const std::string& svg) {
  std::vector<size_t> sizes;
  const std::string key = "points=\"";
  for (size_t pos = svg.find(key); pos != std::string::npos; pos = svg.find(key, pos + 1)) {
    const size_t begin = pos + key.size(), end = svg.find('"', begin);
    const std::string points = svg.substr(begin, end - begin);
    sizes.push_back(points.empty() ? 0 : count(points, " ") + 1);
  }
  return sizes;
}

PlotSeries line_series(const std::string& label, int n, double slope) {
  PlotSeries s;
  s.label = label;
  for (int i = 0; i < n; ++i) {
    s.x.push_back(i * 100.0 / (n - 1));
    s.y.push_back(slope * i / (n - 1));
  }
  return s;
}

TEST(Plot, NiceTicks) {
  EXPECT_EQ(nice_ticks(0.13, 4.7, 6), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(nice_ticks(0, 100, 7), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  const std::vector<double> small = nice_ticks(0.012, 0.031, 5);
  EXPECT_LE(small.front(), 0.012);
  EXPECT_GE(small.back(), 0.031);
  EXPECT_NEAR(small[1] - small[0], 0.005, 1e-12);
  const std::vector<double> flat = nice_ticks(3, 3, 5);  // zero-width range is widened
  EXPECT_LT(flat.front(), 3);
  EXPECT_GT(flat.back(), 3);
  EXPECT_EQ(log_ticks(2, 7), (std::vector<double>{1, 2, 5, 10}));
  const std::vector<double> decades = log_ticks(1e-4, 9);
  EXPECT_NEAR(decades.front(), 1e-4, 1e-18);
  EXPECT_NEAR(decades.back(), 10, 1e-12);
  EXPECT_EQ(decades.size(), 6u);
}

TEST(Plot, TickLabels) {
  EXPECT_EQ(format_tick(20000, 10000), "20k");
  EXPECT_EQ(format_tick(1.5e6, 5e5), "1.5M");
  EXPECT_EQ(format_tick(0.05, 0.05), "0.05");
  EXPECT_EQ(format_tick(0.6, 0.2), "0.6");
  EXPECT_EQ(format_tick(3, 1), "3");
  EXPECT_EQ(format_tick(1e-17, 0.2), "0");
  EXPECT_EQ(format_tick(0.001, 0), "0.001");
}

TEST(Plot, EmaSmoothing) {
  const std::vector<double> constant(5, 2.5);
  for (double v : ema_smooth(constant, 0.9)) EXPECT_NEAR(v, 2.5, 1e-12);  // debiased
  const std::vector<double> y = {1, 3, 2, 5};
  EXPECT_EQ(ema_smooth(y, 0.0), y);
  const std::vector<double> s = ema_smooth(y, 0.5);
  EXPECT_DOUBLE_EQ(s[0], 1);
  EXPECT_DOUBLE_EQ(s[1], (0.25 * 1 + 0.5 * 3) / 0.75);
}

TEST(Plot, SvgStructure) {
  std::vector<PlotPanel> panels(2);
  panels[0].y_label = "loss";
  panels[0].title = "run <a> & b";
  panels[0].series = {line_series("a<b", 101, 1.0), line_series("b", 37, 0.5)};
  panels[1].y_label = "eval_accuracy";
  panels[1].series = {line_series("a", 5, 0.9)};
  PlotOptions options;
  auto svg = render_svg(panels, options);
  ASSERT_TRUE(svg.ok()) << svg.status().to_string();
  EXPECT_EQ(svg->rfind("<?xml", 0), 0u);
  EXPECT_NE(svg->find("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"840\""),
            std::string::npos);
  EXPECT_EQ(svg->substr(svg->size() - 7), "</svg>\n");
  EXPECT_EQ(count(*svg, "<g "), count(*svg, "</g>"));
  EXPECT_EQ(count(*svg, "<text"), count(*svg, "</text>"));
  EXPECT_EQ(polyline_sizes(*svg), (std::vector<size_t>{101, 37, 5}));
  EXPECT_NE(svg->find("run &lt;a&gt; &amp; b"), std::string::npos);
  EXPECT_NE(svg->find(">a&lt;b</text>"), std::string::npos);
  EXPECT_EQ(svg->find("a<b"), std::string::npos);
  // Axis range: x 0..100 in ticks of 20, loss 0..1 in ticks of 0.2.
  auto layout = layout_plot(panels, options);
  ASSERT_TRUE(layout.ok());
  const PanelGeometry& g = layout->panels[0];
  EXPECT_EQ(g.x_min, 0);
  EXPECT_EQ(g.x_max, 100);
  EXPECT_EQ(g.y_min, 0);
  EXPECT_EQ(g.y_max, 1);
  EXPECT_NE(svg->find("class=\"xtick\">100</text>"), std::string::npos);
  EXPECT_NE(svg->find("class=\"ytick\">0.8</text>"), std::string::npos);
  EXPECT_NEAR(g.px(0), g.area.left, 1e-9);
  EXPECT_NEAR(g.py(0), g.area.top + g.area.height, 1e-9);
  EXPECT_GT(g.legend.width, 0);
  EXPECT_TRUE(g.area.contains(g.legend.left, g.legend.top));

  // Smoothing draws each raw curve faint plus the smoothed curve.
  options.smooth = 0.9;
  svg = render_svg(panels, options);
  ASSERT_TRUE(svg.ok());
  EXPECT_EQ(polyline_sizes(*svg), (std::vector<size_t>{101, 101, 37, 37, 5, 5}));
  EXPECT_EQ(count(*svg, "class=\"raw\""), 3u);
}

TEST(Plot, LogAxisDropsNonPositivePoints) {
  std::vector<PlotPanel> panels(1);
  panels[0].y_label = "loss";
  panels[0].series = {{"", {0, 1, 2, 3, 4}, {0.0, 8.0, -1.0, 2.0, std::nan("")}}};
  PlotOptions options;
  options.log_y = true;
  auto svg = render_svg(panels, options);
  ASSERT_TRUE(svg.ok()) << svg.status().to_string();
  EXPECT_EQ(polyline_sizes(*svg), std::vector<size_t>{2});
  auto layout = layout_plot(panels, options);
  EXPECT_EQ(layout->panels[0].y_min, 1);
  EXPECT_EQ(layout->panels[0].y_max, 10);
  EXPECT_EQ(layout->panels[0].legend.width, 0);  // no labelled series: no legend

  panels[0].series = {{"", {0, 1}, {-1.0, 0.0}}};
  auto empty = render_svg(panels, options);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("'loss'"), std::string::npos);
}

TEST(Plot, PngDecodesWithTheCurveWhereExpected) {
  TempDir dir;
  std::vector<PlotPanel> panels(1);
  panels[0].y_label = "loss";
  panels[0].series = {line_series("", 11, 1.0)};  // y = x / 100 on [0, 100]
  PlotOptions options;
  options.width = 640;
  options.panel_height = 400;
  const std::string path = dir.file("curve.png");
  Status written = write_plot(panels, options, path);
  if (written.code() == StatusCode::kNotFound) GTEST_SKIP() << written.to_string();  // no font
  ASSERT_TRUE(written.ok()) << written.to_string();
  auto image = load_image(path);
  ASSERT_TRUE(image.ok()) << image.status().to_string();
  EXPECT_EQ(image->width, 640);
  EXPECT_EQ(image->height, 400);
  const PanelGeometry g = layout_plot(panels, options)->panels[0];
  auto pixel = [&](double x, double y) {
    const uint8_t* p = image->row(static_cast<int>(std::floor(g.py(y)))) +
                       3 * static_cast<int>(std::floor(g.px(x)));
    return std::vector<int>{p[0], p[1], p[2]};
  };
  // On the curve: the first palette colour, #1f77b4.
  const std::vector<int> on = pixel(55, 0.55);
  EXPECT_NEAR(on[0], 0x1f, 40);
  EXPECT_NEAR(on[1], 0x77, 40);
  EXPECT_NEAR(on[2], 0xb4, 40);
  // Away from the curve, the grid and the text: white.
  EXPECT_EQ(pixel(35, 0.75), (std::vector<int>{255, 255, 255}));
  EXPECT_EQ(pixel(75, 0.15), (std::vector<int>{255, 255, 255}));
  // Text was drawn: the left margin (tick labels, y label) has dark pixels.
  int dark = 0;
  for (int y = 0; y < image->height; ++y) {
    for (int x = 0; x < static_cast<int>(g.area.left) - 6; ++x) dark += image->row(y)[3 * x] < 128;
  }
  EXPECT_GT(dark, 50);
}

TEST(Plot, Errors) {
  TempDir dir;
  std::vector<PlotPanel> panels(1);
  panels[0].y_label = "loss";
  panels[0].series = {line_series("a", 3, 1.0)};
  Status bad_ext = write_plot(panels, {}, dir.file("curve.jpg"));
  EXPECT_EQ(bad_ext.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_ext.message().find("'.jpg'"), std::string::npos) << bad_ext.message();
  PlotOptions no_font;
  no_font.font_path = dir.file("missing.ttf");
  auto raster = render_raster(panels, no_font);
  ASSERT_FALSE(raster.ok());
  EXPECT_EQ(raster.status().code(), StatusCode::kNotFound);
  EXPECT_NE(raster.status().message().find("missing.ttf"), std::string::npos);
  PlotOptions bad_smooth;
  bad_smooth.smooth = 1.0;
  EXPECT_FALSE(render_svg(panels, bad_smooth).ok());
  EXPECT_FALSE(render_svg({}, {}).ok());
}

// `vila plot` end to end.
struct CliResult {
  int exit_code = -1;
  std::string err;
};

CliResult run_plot(const std::string& args, const std::string& cwd) {
  const std::string cmd = "cd '" + cwd + "' && '" + std::string(VILA_CLI_PATH) + "' plot " + args +
                          " >out.txt 2>err.txt";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream e(cwd + "/err.txt");
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

TEST(PlotCli, WritesSvgAndNamesBadInput) {
  if (!std::filesystem::exists(VILA_CLI_PATH)) GTEST_SKIP() << "vila binary not built";
  TempDir dir;
  std::string a, b;
  for (int step = 0; step <= 20; ++step) {
    a += "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(3.0 / (step + 1)) +
         "}\n";
    b += "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(2.0 / (step + 1)) +
         "}\n";
  }
  dir.write("a.jsonl", a);
  dir.write("b.jsonl", b + "{\"step\": 21, \"lo");  // truncated last line
  CliResult ok = run_plot(
      "--metrics a.jsonl --metrics b.jsonl --label base --label new --smooth 0.5 --output c.svg",
      dir.path());
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.err.find("b.jsonl"), std::string::npos);  // the skipped line is noted
  std::ifstream in(dir.file("c.svg"));
  const std::string svg((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(polyline_sizes(svg), (std::vector<size_t>{21, 21, 21, 21}));
  EXPECT_NE(svg.find(">new</text>"), std::string::npos);

  const struct {
    std::string args, needle;
  } bad[] = {
      {"--metrics missing.jsonl --output c.svg", "missing.jsonl"},
      {"--metrics a.jsonl --y accuracy --output c.svg", "'accuracy'"},
      {"--metrics a.jsonl --output c.gif", "'.gif'"},
      {"--metrics a.jsonl --metrics b.jsonl --label x --output c.svg", "--label"},
  };
  for (const auto& c : bad) {
    const CliResult r = run_plot(c.args, dir.path());
    EXPECT_EQ(r.exit_code, 1) << c.args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << ": " << r.err;
  }
}

}  // namespace
}  // namespace vila::train
