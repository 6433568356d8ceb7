// Separable two-pass resampling as in Pillow's libImaging/Resample.c (ImagingResampleInner):
// horizontal pass first (only over the source rows the vertical pass reads), then vertical.
// Per output sample, filter weights are evaluated in double, normalised to sum 1, then rounded
// half away from zero to 22-bit fixed point; accumulation starts at the 0.5 bias and the result
// is clipped to 0..255 after an arithmetic shift. Written from the algorithm, not copied.
// Parallel: output rows of each pass in chunks over vision_parallel_for (rows are independent).
#include "vision/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "core/thread_pool.h"

namespace vila {

void vision_parallel_for(int64_t n, int64_t min_parallel,
                         const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  static ThreadPool pool([] {
    const char* env = std::getenv("VILA_NUM_THREADS");
    return env != nullptr ? std::atoi(env) : 0;
  }());
  static std::mutex busy;  // one parallel_for at a time; others (and nested calls) run inline
  if (n < min_parallel || pool.size() == 1) {
    fn(0, n);
    return;
  }
  std::unique_lock<std::mutex> lock(busy, std::try_to_lock);
  if (!lock.owns_lock()) {
    fn(0, n);
    return;
  }
  pool.parallel_for(n, fn);
}

namespace {

// Rows per pass below which threads cost more than they save.
constexpr int64_t kMinParallelRows = 16;

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coefficients {
  int ksize = 0;
  std::vector<int> first;  // first source index per output sample
  std::vector<int> count;  // number of source samples per output sample
  std::vector<int32_t> k;  // out_size * ksize fixed-point weights
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size).
Coefficients compute_coefficients(int in_size, int out_size) {
  constexpr double kSupport = 2.0;  // bicubic
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kSupport * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      total += w[x];
    }
    int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = total != 0.0 ? w[x] / total : w[x];
      k[x] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits)
                                        : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  const int32_t s = v >> kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<uint8_t>(s < 0 ? 0 : (s > 255 ? 255 : s));
}

}  // namespace

StatusOr<Image> resize_bicubic(const Image& src, int width, int height) {
  if (width <= 0 || height <= 0) {
    return invalid_argument("resize: target size " + std::to_string(width) + "x" +
                            std::to_string(height) + " must be positive");
  }
  if (src.empty()) return invalid_argument("resize: empty source image");
  if (width == src.width && height == src.height) return src;

  const bool need_horizontal = width != src.width;
  const bool need_vertical = height != src.height;
  const Coefficients vert = compute_coefficients(src.height, height);
  const int ybox_first = vert.first[0];
  const int ybox_last = vert.first[height - 1] + vert.count[height - 1];
  constexpr int32_t kBias = 1 << (kPrecisionBits - 1);

  Image temp;
  const Image* in = &src;
  int row_offset = 0;  // vertical bounds are relative to this source row
  if (need_horizontal) {
    const Coefficients horiz = compute_coefficients(src.width, width);
    temp = Image(width, ybox_last - ybox_first);  // (rows the vertical pass reads, width, 3)
    vision_parallel_for(temp.height, kMinParallelRows, [&](int64_t y0, int64_t y1) {
      for (int64_t yy = y0; yy < y1; ++yy) {
        const uint8_t* s = src.row(static_cast<int>(yy) + ybox_first);
        uint8_t* d = temp.row(static_cast<int>(yy));
        for (int xx = 0; xx < width; ++xx) {
          const int xmin = horiz.first[xx];
          const int n = horiz.count[xx];
          const int32_t* k = &horiz.k[static_cast<size_t>(xx) * horiz.ksize];
          int32_t s0 = kBias, s1 = kBias, s2 = kBias;
          for (int x = 0; x < n; ++x) {
            const uint8_t* p = s + 3 * (x + xmin);
            s0 += p[0] * k[x];
            s1 += p[1] * k[x];
            s2 += p[2] * k[x];
          }
          d[3 * xx] = clip8(s0);
          d[3 * xx + 1] = clip8(s1);
          d[3 * xx + 2] = clip8(s2);
        }
      }
    });
    in = &temp;
    row_offset = ybox_first;
  }
  if (!need_vertical) return temp;

  Image out(in->width, height);  // (height, width, 3)
  const int rowlen = in->width * 3;
  vision_parallel_for(height, kMinParallelRows, [&](int64_t y0, int64_t y1) {
    std::vector<int32_t> acc(rowlen);  // one output row, 22-bit fixed point
    for (int64_t yy = y0; yy < y1; ++yy) {
      const int ymin = vert.first[yy] - row_offset;
      const int n = vert.count[yy];
      const int32_t* k = &vert.k[static_cast<size_t>(yy) * vert.ksize];
      std::fill(acc.begin(), acc.end(), kBias);
      for (int y = 0; y < n; ++y) {
        const uint8_t* s = in->row(y + ymin);
        const int32_t ky = k[y];
        for (int i = 0; i < rowlen; ++i) acc[i] += s[i] * ky;
      }
      uint8_t* d = out.row(static_cast<int>(yy));
      for (int i = 0; i < rowlen; ++i) d[i] = clip8(acc[i]);
    }
  });
  return out;
}

}  // namespace vila
