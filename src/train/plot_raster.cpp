// The PNG side of plot.h: draws the figure that layout_plot() describes into RGB pixels and
// encodes it with libpng.
//
// Pixel (i, j) covers [i, i + 1) x [j, j + 1), centre (i + 0.5, j + 0.5), the SVG convention.
// Curves are stroked by coverage: a pixel centre at distance d from the polyline gets
// clamp(w / 2 + 0.5 - d, 0, 1), the maximum over the polyline's segments, so joints are not
// painted twice; the curve is then blended over the image once. Text is FreeType's 8-bit
// anti-aliased rendering of a TrueType font, blended in the same way.
#include <ft2build.h>
#include FT_FREETYPE_H
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <memory>

#include "core/mapped_file.h"
#include "train/plot.h"
#include "train/plot_style.h"

namespace vila::train {
namespace {

using namespace plot_style;  // NOLINT: the shared sizes

constexpr int kChannels = 3;
constexpr double kLegendFill = 0.85;  // legend box opacity
constexpr int kFreeTypeShift = 6;     // 26.6 fixed point
constexpr unsigned kWhite = 0xffffff;
constexpr double kByteMax = 255.0;

struct Rgb {
  double r, g, b;
};

Rgb to_rgb(unsigned hex) {
  return {static_cast<double>((hex >> 16) & 0xff), static_cast<double>((hex >> 8) & 0xff),
          static_cast<double>(hex & 0xff)};
}

Rgb parse_color(const char* hash_hex) {
  return to_rgb(static_cast<unsigned>(std::strtoul(hash_hex + 1, nullptr, 16)));
}

// Blends `color` over pixel (x, y) with opacity `alpha` in [0, 1]; outside pixels are ignored.
void blend(Image* img, int x, int y, const Rgb& color, double alpha) {
  if (x < 0 || y < 0 || x >= img->width || y >= img->height || alpha <= 0) return;
  uint8_t* p = img->row(y) + static_cast<size_t>(x) * kChannels;
  const double c[kChannels] = {color.r, color.g, color.b};
  for (int k = 0; k < kChannels; ++k) {
    p[k] = static_cast<uint8_t>(std::lround(p[k] + (c[k] - p[k]) * std::min(alpha, 1.0)));
  }
}

void fill_rect(Image* img, double x0, double y0, double x1, double y1, const Rgb& color,
               double alpha) {
  for (int y = static_cast<int>(std::lround(y0)); y < static_cast<int>(std::lround(y1)); ++y) {
    for (int x = static_cast<int>(std::lround(x0)); x < static_cast<int>(std::lround(x1)); ++x) {
      blend(img, x, y, color, alpha);
    }
  }
}

// One-pixel axis-parallel lines on the pixel grid (crisp, like a 1-unit SVG line at x + 0.5).
void hline(Image* img, double y, double x0, double x1, const Rgb& color) {
  const double row = std::floor(y);
  fill_rect(img, x0, row, x1 + 1, row + 1, color, 1.0);
}
void vline(Image* img, double x, double y0, double y1, const Rgb& color) {
  const double col = std::floor(x);
  fill_rect(img, col, y0, col + 1, y1 + 1, color, 1.0);
}

// Per-pixel coverage of one stroked polyline, clipped to a rectangle.
class Coverage {
 public:
  Coverage(int width, int height, const PlotRect& clip)
      : width_(width), height_(height), clip_(clip), cover_(static_cast<size_t>(width) * height) {}

  void segment(double x0, double y0, double x1, double y1, double line_width) {
    const double reach = line_width / 2 + 1;
    const int xa = std::max(static_cast<int>(std::floor(std::min(x0, x1) - reach)),
                            static_cast<int>(std::floor(clip_.left)));
    const int xb = std::min(static_cast<int>(std::ceil(std::max(x0, x1) + reach)),
                            static_cast<int>(std::ceil(clip_.left + clip_.width)));
    const int ya = std::max(static_cast<int>(std::floor(std::min(y0, y1) - reach)),
                            static_cast<int>(std::floor(clip_.top)));
    const int yb = std::min(static_cast<int>(std::ceil(std::max(y0, y1) + reach)),
                            static_cast<int>(std::ceil(clip_.top + clip_.height)));
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = std::max(ya, 0); y < std::min(yb, height_); ++y) {
      for (int x = std::max(xa, 0); x < std::min(xb, width_); ++x) {
        const double cx = x + 0.5, cy = y + 0.5;
        if (!clip_.contains(cx, cy)) continue;
        const double t =
            len2 > 0 ? std::clamp(((cx - x0) * dx + (cy - y0) * dy) / len2, 0.0, 1.0) : 0.0;
        const double d = std::hypot(cx - (x0 + t * dx), cy - (y0 + t * dy));
        float& c = cover_[static_cast<size_t>(y) * width_ + x];
        c = std::max(c, static_cast<float>(std::clamp(line_width / 2 + 0.5 - d, 0.0, 1.0)));
      }
    }
  }

  void composite(Image* img, const Rgb& color, double opacity) const {
    for (int y = 0; y < height_; ++y) {
      for (int x = 0; x < width_; ++x) {
        const float c = cover_[static_cast<size_t>(y) * width_ + x];
        if (c > 0) blend(img, x, y, color, c * opacity);
      }
    }
  }

 private:
  int width_, height_;
  PlotRect clip_;
  std::vector<float> cover_;
};

void stroke(Image* img, const PlotRect& clip, const std::vector<double>& x,
            const std::vector<double>& y, const Rgb& color, double width, double opacity) {
  Coverage cover(img->width, img->height, clip);
  if (x.size() == 1) cover.segment(x[0], y[0], x[0], y[0], width);
  for (size_t i = 1; i < x.size(); ++i) cover.segment(x[i - 1], y[i - 1], x[i], y[i], width);
  cover.composite(img, color, opacity);
}

// Unicode code points of UTF-8 text; invalid bytes become U+FFFD.
std::vector<uint32_t> utf8_decode(const std::string& s) {
  constexpr uint32_t kReplacement = 0xfffd;
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int extra = b < 0x80           ? 0
                      : (b >> 5) == 0x6  ? 1
                      : (b >> 4) == 0xe  ? 2
                      : (b >> 3) == 0x1e ? 3
                                         : -1;
    if (extra < 0 || i + extra >= s.size()) {
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    uint32_t cp = extra == 0 ? b : b & (0x3f >> extra);
    bool valid = true;
    for (int k = 1; k <= extra; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      valid = valid && (c >> 6) == 0x2;
      cp = (cp << 6) | (c & 0x3f);
    }
    out.push_back(valid ? cp : kReplacement);
    i += valid ? extra + 1 : 1;
  }
  return out;
}

// A TrueType face rendered through FreeType.
class Font {
 public:
  static StatusOr<std::unique_ptr<Font>> open(const std::string& requested) {
    auto font = std::unique_ptr<Font>(new Font());
    if (FT_Init_FreeType(&font->library_) != 0) {
      return internal_error("plot: cannot initialise FreeType");
    }
    std::vector<std::string> candidates;
    if (!requested.empty()) {
      candidates.push_back(requested);
    } else {
      candidates.assign(kDefaultFonts, kDefaultFonts + kNumDefaultFonts);
    }
    std::string tried;
    for (const std::string& path : candidates) {
      if (FT_New_Face(font->library_, path.c_str(), 0, &font->face_) == 0) return font;
      font->face_ = nullptr;
      tried += (tried.empty() ? "" : ", ") + path;
    }
    return not_found("plot: cannot open a TrueType font for the PNG (tried " + tried +
                     "); install fonts-dejavu-core or give a font file");
  }
  ~Font() {
    if (face_ != nullptr) FT_Done_Face(face_);
    if (library_ != nullptr) FT_Done_FreeType(library_);
  }

  // Gray coverage of one line of text; `baseline` is the baseline's row in it.
  struct Bitmap {
    int width = 0, height = 0, baseline = 0;
    std::vector<uint8_t> alpha;
  };

  Bitmap render(const std::string& text, int pixel_size) {
    Bitmap bm;
    if (FT_Set_Pixel_Sizes(face_, 0, pixel_size) != 0) return bm;
    const int ascent = static_cast<int>(face_->size->metrics.ascender >> kFreeTypeShift);
    const int descent = static_cast<int>(-(face_->size->metrics.descender >> kFreeTypeShift));
    struct Glyph {
      int left, top, width, rows;
      std::vector<uint8_t> pixels;
    };
    std::vector<Glyph> glyphs;
    int pen = 0, right = 0;
    for (uint32_t cp : utf8_decode(text)) {
      if (FT_Load_Char(face_, cp, FT_LOAD_RENDER) != 0) continue;
      const FT_GlyphSlot g = face_->glyph;
      Glyph glyph{pen + g->bitmap_left,
                  g->bitmap_top,
                  static_cast<int>(g->bitmap.width),
                  static_cast<int>(g->bitmap.rows),
                  {}};
      for (int r = 0; r < glyph.rows; ++r) {
        const uint8_t* src = g->bitmap.buffer + static_cast<ptrdiff_t>(r) * g->bitmap.pitch;
        glyph.pixels.insert(glyph.pixels.end(), src, src + glyph.width);
      }
      right = std::max(right, glyph.left + glyph.width);
      pen += static_cast<int>(g->advance.x >> kFreeTypeShift);
      glyphs.push_back(std::move(glyph));
    }
    bm.width = std::max(pen, right);
    bm.height = ascent + descent;
    bm.baseline = ascent;
    bm.alpha.assign(static_cast<size_t>(bm.width) * bm.height, 0);
    for (const Glyph& g : glyphs) {
      for (int r = 0; r < g.rows; ++r) {
        const int y = bm.baseline - g.top + r;
        if (y < 0 || y >= bm.height) continue;
        for (int c = 0; c < g.width; ++c) {
          const int x = g.left + c;
          if (x < 0 || x >= bm.width) continue;
          uint8_t& a = bm.alpha[static_cast<size_t>(y) * bm.width + x];
          a = std::max(a, g.pixels[static_cast<size_t>(r) * g.width + c]);
        }
      }
    }
    return bm;
  }

 private:
  Font() = default;
  FT_Library library_ = nullptr;
  FT_Face face_ = nullptr;
};

// Draws text with its baseline through (x, y); `align` 0 / 0.5 / 1 puts x at the text's start,
// middle or end. `vertical` turns it a quarter counter-clockwise (reading upwards), about (x, y).
void draw_text(Image* img, Font* font, const std::string& text, int size, double x, double y,
               double align, const Rgb& color, bool vertical = false) {
  const Font::Bitmap bm = font->render(text, size);
  const double start = align * bm.width;
  for (int v = 0; v < bm.height; ++v) {
    for (int u = 0; u < bm.width; ++u) {
      const uint8_t a = bm.alpha[static_cast<size_t>(v) * bm.width + u];
      if (a == 0) continue;
      const double du = u - start, dv = v - bm.baseline;
      const double px = vertical ? x + dv : x + du;
      const double py = vertical ? y - du - 1 : y + dv;
      blend(img, static_cast<int>(std::lround(px)), static_cast<int>(std::lround(py)), color,
            a / kByteMax);
    }
  }
}

void draw_panel(const PlotPanel& panel, const PanelGeometry& g, const PlotOptions& options,
                Font* font, Image* img) {
  const PlotRect& a = g.area;
  const double right = a.left + a.width, bottom = a.top + a.height;
  const Rgb grid = to_rgb(kGridColor), axis = to_rgb(kAxisColor), text = to_rgb(kTextColor);
  if (!panel.title.empty()) {
    draw_text(img, font, panel.title, kTitleFont, a.left + a.width / 2, g.title_y, 0.5, text);
  }
  for (double t : g.y_ticks) {
    const double y = g.py(t);
    hline(img, y, a.left, right, grid);
    hline(img, y, a.left - kTickLength, a.left, axis);
    draw_text(img, font, format_tick(t, g.y_step), kTickFont, a.left - kYTickLabelGap,
              y + kTickFont * kMiddleBaselineEm, 1.0, text);
  }
  for (double t : g.x_ticks) {
    const double x = g.px(t);
    vline(img, x, a.top, bottom, grid);
    vline(img, x, bottom, bottom + kTickLength, axis);
    draw_text(img, font, format_tick(t, g.x_step), kTickFont, x, bottom + kXTickLabelBaseline, 0.5,
              text);
  }
  hline(img, a.top, a.left, right, axis);
  hline(img, bottom, a.left, right, axis);
  vline(img, a.left, a.top, bottom, axis);
  vline(img, right, a.top, bottom, axis);
  draw_text(img, font, options.x_label, kLabelFont, a.left + a.width / 2, bottom + kXLabelBaseline,
            0.5, text);
  draw_text(img, font, panel.y_label, kLabelFont, kYLabelCenter, a.top + a.height / 2, 0.5, text,
            /*vertical=*/true);

  for (size_t i = 0; i < panel.series.size(); ++i) {
    std::vector<double> x, y;
    for (const auto& [px, py] : plot_points(panel.series[i], g.log_y)) {
      x.push_back(px);
      y.push_back(py);
    }
    const Rgb color = parse_color(series_color(i));
    auto to_pixels = [&](std::vector<double> ys) {
      for (double& v : ys) v = g.py(v);
      return ys;
    };
    std::vector<double> xs = x;
    for (double& v : xs) v = g.px(v);
    if (options.smooth > 0) {
      stroke(img, a, xs, to_pixels(y), color, kRawLineWidth, kRawOpacity);
      stroke(img, a, xs, to_pixels(ema_smooth(y, options.smooth)), color, kSmoothLineWidth, 1.0);
    } else {
      stroke(img, a, xs, to_pixels(y), color, kLineWidth, 1.0);
    }
  }

  if (g.legend.width > 0) {
    const PlotRect& l = g.legend;
    fill_rect(img, l.left, l.top, l.left + l.width, l.top + l.height, to_rgb(kWhite), kLegendFill);
    const Rgb border = to_rgb(kLegendBorder);
    hline(img, l.top, l.left, l.left + l.width, border);
    hline(img, l.top + l.height, l.left, l.left + l.width, border);
    vline(img, l.left, l.top, l.top + l.height, border);
    vline(img, l.left + l.width, l.top, l.top + l.height, border);
    double row_y = l.top + kLegendPad + kLegendFont / 2.0;
    for (size_t i = 0; i < panel.series.size(); ++i) {
      if (panel.series[i].label.empty()) continue;
      const double x0 = l.left + kLegendPad;
      const Rgb color = parse_color(series_color(i));
      stroke(img, l, {x0, x0 + kLegendSwatch}, {row_y, row_y}, color, kSmoothLineWidth, 1.0);
      draw_text(img, font, panel.series[i].label, kLegendFont, x0 + kLegendSwatch + kLegendGap,
                row_y + kLegendFont * kMiddleBaselineEm, 0.0, text);
      row_y += kLegendRow;
    }
  }
}

struct PngWriteContext {
  std::vector<uint8_t> bytes;
  std::jmp_buf jump;
  char message[256];
};

void png_write_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngWriteContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof(ctx->message), "%s", msg ? msg : "unknown error");
  std::longjmp(ctx->jump, 1);
}
void png_write_warning(png_structp /*png*/, png_const_charp /*msg*/) {}
void png_write_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* ctx = static_cast<PngWriteContext*>(png_get_io_ptr(png));
  ctx->bytes.insert(ctx->bytes.end(), data, data + length);
}
void png_flush_bytes(png_structp /*png*/) {}

}  // namespace

StatusOr<Image> render_raster(const std::vector<PlotPanel>& panels, const PlotOptions& options) {
  VILA_ASSIGN_OR_RETURN(PlotLayout layout, layout_plot(panels, options));
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<Font> font, Font::open(options.font_path));
  Image img(layout.width, layout.height);
  std::fill(img.pixels.begin(), img.pixels.end(), static_cast<uint8_t>(kByteMax));
  for (size_t p = 0; p < panels.size(); ++p) {
    draw_panel(panels[p], layout.panels[p], options, font.get(), &img);
  }
  return img;
}

Status write_png(const Image& image, const std::string& path) {
  if (image.empty() || image.pixels.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return invalid_argument("write_png: " + path + ": empty or inconsistent image of " +
                            std::to_string(image.width) + "x" + std::to_string(image.height));
  }
  // Objects with destructors live above setjmp so that longjmp skips no destructor.
  PngWriteContext ctx;
  ctx.message[0] = '\0';
  std::vector<png_bytep> rows(image.height);
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_write_error, png_write_warning);
  if (png == nullptr) return internal_error("write_png: cannot create a libpng writer");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return internal_error("write_png: cannot create a libpng writer");
  }
  if (setjmp(ctx.jump)) {
    png_destroy_write_struct(&png, &info);
    return internal_error("write_png: " + path + ": " + ctx.message);
  }
  png_set_write_fn(png, &ctx, png_write_bytes, png_flush_bytes);
  png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (int y = 0; y < image.height; ++y) rows[y] = const_cast<png_bytep>(image.row(y));
  png_write_info(png, info);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return write_file_atomic(path, ctx.bytes.data(), ctx.bytes.size());
}

}  // namespace vila::train
