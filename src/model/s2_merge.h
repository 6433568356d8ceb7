// Dynamic-S2 feature merge (VILA llava/model/llava_arch.py: merge_chessboard, split_chessboard,
// merge_features_for_dynamic_s2), on channel-last maps.
//
// Dimensions: g tile side in tokens (32 for SigLIP-448/14), C channels per scale, n_h x n_w tile
// grid (n_h rows, n_w columns), K scales.
//
// VILA keeps maps channel-first (b, C, H, W); here they are channel-last (H, W, C), the same
// values. Tile t of a grid is the block at row t / n_w, column t % n_w (row-major); inside a
// tile, token r*g + c is at row r, column c ("b (h w) c -> b c h w").
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace vila {

// tiles (n_h*n_w, g*g, C) -> map (n_h*g, n_w*g, C): tile i*n_w + j lands at block (i, j).
void merge_chessboard(const float* tiles, int64_t n_h, int64_t n_w, int64_t g, int64_t c,
                      float* map);
// map (n_h*g, n_w*g, C) -> tiles (n_h*n_w, g*g, C): the inverse of merge_chessboard.
void split_chessboard(const float* map, int64_t n_h, int64_t n_w, int64_t g, int64_t c,
                      float* tiles);

// Tile counts of the scales: scales[i] / scales[0] squared for every scale but the last, which
// has rows*cols tiles. scales are the s2_scales of the config (e.g. 448, 896, 1344).
int64_t s2_tile_count(const std::vector<int64_t>& scales, int64_t rows, int64_t cols);

// features (n_tiles, g*g, C): SigLIP output of the tiles of one image, in preprocessing order
// (scale 0 tiles, scale 1 tiles, ..., the rows*cols tiles of the last scale; row-major in each).
// Per scale: merge_chessboard; area-resize (fp32) to the merged size of scale `resize_idx`
// (s2_resize_output_to_scale_idx; negative counts from the end; NVILA uses -1, the last scale's
// (rows*g, cols*g)); concat along channels in scale order. Then split_chessboard into the block
// grid of that scale (rows x cols for the last scale, else (scale/scales[0])² blocks):
//   blocks (out_rows*out_cols, g*g, K*C),  block channel k*C + c = scale k's channel c.
// InvalidArgument if n_tiles does not match the scales and grid, or resize_idx is out of range.
Status s2_merge_features(const float* features, int64_t n_tiles, int64_t g, int64_t c,
                         const std::vector<int64_t>& scales, int64_t rows, int64_t cols,
                         int64_t resize_idx, std::vector<float>& blocks, int64_t* out_rows,
                         int64_t* out_cols);

}  // namespace vila
