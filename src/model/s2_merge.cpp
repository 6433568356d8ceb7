// Dynamic-S2 merge: chessboard merge per scale, area resize to the last scale, channel concat,
// chessboard split into the blocks the projector runs on.
#include "model/s2_merge.h"

#include <algorithm>
#include <string>

#include "core/tensor.h"
#include "ops/cpu/resize_area.h"

namespace vila {

void merge_chessboard(const float* tiles, int64_t n_h, int64_t n_w, int64_t g, int64_t c,
                      float* map) {
  const int64_t map_w = n_w * g;
  for (int64_t i = 0; i < n_h; ++i) {
    for (int64_t j = 0; j < n_w; ++j) {
      const float* tile = tiles + (i * n_w + j) * g * g * c;  // (g, g, C)
      for (int64_t r = 0; r < g; ++r) {
        const float* src = tile + r * g * c;
        std::copy(src, src + g * c, map + ((i * g + r) * map_w + j * g) * c);
      }
    }
  }
}

void split_chessboard(const float* map, int64_t n_h, int64_t n_w, int64_t g, int64_t c,
                      float* tiles) {
  const int64_t map_w = n_w * g;
  for (int64_t i = 0; i < n_h; ++i) {
    for (int64_t j = 0; j < n_w; ++j) {
      float* tile = tiles + (i * n_w + j) * g * g * c;
      for (int64_t r = 0; r < g; ++r) {
        const float* src = map + ((i * g + r) * map_w + j * g) * c;
        std::copy(src, src + g * c, tile + r * g * c);
      }
    }
  }
}

int64_t s2_tile_count(const std::vector<int64_t>& scales, int64_t rows, int64_t cols) {
  int64_t n = 0;
  for (size_t s = 0; s + 1 < scales.size(); ++s) {
    const int64_t split = scales[s] / scales[0];
    n += split * split;
  }
  return n + rows * cols;
}

Status s2_merge_features(const float* features, int64_t n_tiles, int64_t g, int64_t c,
                         const std::vector<int64_t>& scales, int64_t rows, int64_t cols,
                         int64_t resize_idx, std::vector<float>& blocks, int64_t* out_rows,
                         int64_t* out_cols) {
  if (scales.empty() || scales[0] <= 0 || rows <= 0 || cols <= 0 || g <= 0 || c <= 0) {
    return invalid_argument("s2 merge: need scales, rows, cols, g and C positive");
  }
  const int64_t expected = s2_tile_count(scales, rows, cols);
  if (n_tiles != expected) {
    return invalid_argument("s2 merge: " + std::to_string(n_tiles) + " tiles, expected " +
                            std::to_string(expected) + " for s2_scales and a " +
                            std::to_string(rows) + "x" + std::to_string(cols) + " grid");
  }
  const auto n_scales = static_cast<int64_t>(scales.size());
  const int64_t idx = resize_idx < 0 ? resize_idx + n_scales : resize_idx;
  if (idx < 0 || idx >= n_scales) {
    return invalid_argument("s2 merge: s2_resize_output_to_scale_idx " +
                            std::to_string(resize_idx) + " outside the " +
                            std::to_string(n_scales) + " scales");
  }
  // Block grid of scale s: rows x cols for the last scale, (scale / scales[0])² otherwise.
  auto grid_h = [&](int64_t s) { return s + 1 == n_scales ? rows : scales[s] / scales[0]; };
  auto grid_w = [&](int64_t s) { return s + 1 == n_scales ? cols : scales[s] / scales[0]; };
  *out_rows = grid_h(idx);
  *out_cols = grid_w(idx);
  const int64_t out_h = *out_rows * g, out_w = *out_cols * g, kc = n_scales * c;
  std::vector<float> concat(static_cast<size_t>(out_h * out_w * kc));  // (rows*g, cols*g, K*C)
  std::vector<float> merged, resized(static_cast<size_t>(out_h * out_w * c));

  int64_t tile = 0;
  for (int64_t s = 0; s < n_scales; ++s) {
    const int64_t n_h = grid_h(s), n_w = grid_w(s);
    merged.resize(static_cast<size_t>(n_h * g * n_w * g * c));  // (n_h*g, n_w*g, C)
    merge_chessboard(features + tile * g * g * c, n_h, n_w, g, c, merged.data());
    tile += n_h * n_w;
    VILA_RETURN_IF_ERROR(
        cpu::resize_area(TensorView(resized.data(), DType::kF32, {out_h, out_w, c}),
                         TensorView(merged.data(), DType::kF32, {n_h * g, n_w * g, c})));
    for (int64_t px = 0; px < out_h * out_w; ++px) {  // channels [s*C, (s+1)*C)
      const float* src = resized.data() + px * c;
      std::copy(src, src + c, concat.data() + px * kc + s * c);
    }
  }
  blocks.resize(concat.size());
  split_chessboard(concat.data(), *out_rows, *out_cols, g, kc, blocks.data());
  return ok_status();
}

}  // namespace vila
