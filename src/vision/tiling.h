// VILA's image tiling (llava/mm_utils.py): find_closest_aspect_ratio, dynamic_preprocess
// (NVILA-Lite) and dynamic_s2_preprocess (NVILA). All resizes are Pillow-exact (resize.h).
#pragma once

#include <vector>

#include "core/status.h"
#include "vision/image.h"

namespace vila {

// A tile grid: cols tiles across, rows tiles down (VILA's ratio tuple (i, j) = (cols, rows)).
struct TileGrid {
  int cols = 1;
  int rows = 1;
  bool operator==(const TileGrid& o) const { return cols == o.cols && rows == o.rows; }
};

// Grids with min_tiles <= cols * rows <= max_tiles, sorted by cols * rows (stable; grids of equal
// product are ordered by cols: Python's set order differs, but that never decides a result for
// the configurations VILA uses, see docs/preprocessing.md). Empty if min_tiles > max_tiles.
std::vector<TileGrid> candidate_grids(int min_tiles, int max_tiles);

// Smallest |aspect_ratio - cols/rows|; on an exact tie the later candidate wins if
// width * height > 0.5 * image_size^2 * cols * rows. (1, 1) if there are no candidates.
TileGrid find_closest_aspect_ratio(double aspect_ratio, const std::vector<TileGrid>& candidates,
                                   int width, int height, int image_size);

// The grid dynamic_preprocess / dynamic_s2_preprocess would choose for a width x height image.
TileGrid dynamic_grid(int width, int height, int min_tiles, int max_tiles, int image_size);
// min_tiles is (scales.back() / scales.front())^2 as in VILA.
TileGrid dynamic_s2_grid(int width, int height, const std::vector<int>& scales, int max_tiles,
                         int image_size);

// Tiles of image_size^2, row-major, plus a thumbnail (the whole image resized) appended last when
// use_thumbnail and there is more than one tile.
StatusOr<std::vector<Image>> dynamic_preprocess(const Image& image, int min_tiles, int max_tiles,
                                                int image_size, bool use_thumbnail);

struct S2Tiles {
  std::vector<Image> tiles;  // per scale ascending, row-major within a scale
  int rows = 0;              // block_size = (rows, cols) of the last scale
  int cols = 0;
};
// For each scale but the last: square resize to image_size * (scale / scales[0]) and cut. Last
// scale: the aspect-ratio grid. InvalidArgument for empty or non-positive scales.
StatusOr<S2Tiles> dynamic_s2_preprocess(const Image& image, const std::vector<int>& scales,
                                        int max_tiles, int image_size);

}  // namespace vila
