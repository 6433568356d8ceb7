#include "vision/tiling.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "vision/resize.h"

namespace vila {
namespace {

// Resizes to (grid.cols * size, grid.rows * size) and appends the tiles row-major.
Status cut_tiles(const Image& image, TileGrid grid, int size, std::vector<Image>* out) {
  VILA_ASSIGN_OR_RETURN(Image resized, resize_bicubic(image, grid.cols * size, grid.rows * size));
  for (int i = 0; i < grid.cols * grid.rows; ++i) {
    VILA_ASSIGN_OR_RETURN(Image tile, crop_image(resized, (i % grid.cols) * size,
                                                 (i / grid.cols) * size, size, size));
    out->push_back(std::move(tile));
  }
  return ok_status();
}

Status check_args(const Image& image, int image_size) {
  if (image.empty()) return invalid_argument("tiling: empty image");
  if (image_size <= 0) return invalid_argument("tiling: image_size must be positive");
  return ok_status();
}

}  // namespace

std::vector<TileGrid> candidate_grids(int min_tiles, int max_tiles) {
  std::vector<TileGrid> grids;
  if (min_tiles > max_tiles) return grids;
  for (int cols = 1; cols <= max_tiles; ++cols) {
    for (int rows = 1; rows <= max_tiles; ++rows) {
      const int n = cols * rows;
      if (n >= min_tiles && n <= max_tiles) grids.push_back({cols, rows});
    }
  }
  std::stable_sort(grids.begin(), grids.end(), [](const TileGrid& a, const TileGrid& b) {
    return a.cols * a.rows < b.cols * b.rows;
  });
  return grids;
}

TileGrid find_closest_aspect_ratio(double aspect_ratio, const std::vector<TileGrid>& candidates,
                                   int width, int height, int image_size) {
  double best_diff = INFINITY;
  TileGrid best{1, 1};
  const double area = static_cast<double>(width) * static_cast<double>(height);
  for (const TileGrid& g : candidates) {
    const double target = static_cast<double>(g.cols) / static_cast<double>(g.rows);
    const double diff = std::fabs(aspect_ratio - target);
    if (diff < best_diff) {
      best_diff = diff;
      best = g;
    } else if (diff == best_diff) {
      if (area > 0.5 * image_size * image_size * g.cols * g.rows) best = g;
    }
  }
  return best;
}

TileGrid dynamic_grid(int width, int height, int min_tiles, int max_tiles, int image_size) {
  const double aspect = static_cast<double>(width) / static_cast<double>(height);
  return find_closest_aspect_ratio(aspect, candidate_grids(min_tiles, max_tiles), width, height,
                                   image_size);
}

TileGrid dynamic_s2_grid(int width, int height, const std::vector<int>& scales, int max_tiles,
                         int image_size) {
  const int ratio = scales.empty() || scales.front() <= 0 ? 1 : scales.back() / scales.front();
  return dynamic_grid(width, height, ratio * ratio, max_tiles, image_size);
}

StatusOr<std::vector<Image>> dynamic_preprocess(const Image& image, int min_tiles, int max_tiles,
                                                int image_size, bool use_thumbnail) {
  VILA_RETURN_IF_ERROR(check_args(image, image_size));
  const TileGrid grid = dynamic_grid(image.width, image.height, min_tiles, max_tiles, image_size);
  std::vector<Image> tiles;
  VILA_RETURN_IF_ERROR(cut_tiles(image, grid, image_size, &tiles));
  if (use_thumbnail && tiles.size() != 1) {
    VILA_ASSIGN_OR_RETURN(Image thumb, resize_bicubic(image, image_size, image_size));
    tiles.push_back(std::move(thumb));
  }
  return tiles;
}

StatusOr<S2Tiles> dynamic_s2_preprocess(const Image& image, const std::vector<int>& scales,
                                        int max_tiles, int image_size) {
  VILA_RETURN_IF_ERROR(check_args(image, image_size));
  if (scales.empty()) return invalid_argument("dynamic_s2: s2_scales is empty");
  for (int s : scales) {
    if (s <= 0) return invalid_argument("dynamic_s2: s2_scales must be positive");
  }
  S2Tiles out;
  for (size_t i = 0; i + 1 < scales.size(); ++i) {
    const int n = scales[i] / scales.front();
    if (n <= 0)
      return invalid_argument("dynamic_s2: scale " + std::to_string(scales[i]) +
                              " is smaller than the first scale");
    VILA_RETURN_IF_ERROR(cut_tiles(image, {n, n}, image_size, &out.tiles));
  }
  const TileGrid grid = dynamic_s2_grid(image.width, image.height, scales, max_tiles, image_size);
  VILA_RETURN_IF_ERROR(cut_tiles(image, grid, image_size, &out.tiles));
  out.rows = grid.rows;
  out.cols = grid.cols;
  return out;
}

}  // namespace vila
