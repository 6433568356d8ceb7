// From a decoded image to normalised float tiles, as VILA's process_image + SiglipImageProcessor,
// and the number of LLM tokens an image becomes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "vision/image.h"

namespace vila {

struct PreprocessConfig {
  // Top-level config.json.
  std::string image_aspect_ratio = "resize";  // "resize", "pad", "dynamic", "dynamic_s2"
  std::vector<int> s2_scales;                 // "448,896,1344" (dynamic_s2)
  int max_tiles = 12;
  int min_tiles = 1;
  int patch_size = 14;           // vision_tower_cfg / vision_tower/config.json
  int projector_downsample = 2;  // k of the k x k spatial-to-channel projector (1 if none)
  // vision_tower/preprocessor_config.json.
  int image_size = 448;  // size.height (== size.width)
  std::array<float, 3> image_mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> image_std{0.5f, 0.5f, 0.5f};
  double rescale_factor = 1.0 / 255.0;
  bool do_rescale = true;
  bool do_normalize = true;
};

// Reads <model_dir>/config.json and <model_dir>/vision_tower/preprocessor_config.json (falling back
// to <model_dir>/preprocessor_config.json). Errors name the file and the field.
StatusOr<PreprocessConfig> load_preprocess_config(const std::string& model_dir);

// k from an mm_projector_type: "mlp_downsample*" 2, "*3x3*" 3, "linear" / "mlp2x_gelu" 1.
StatusOr<int> projector_downsample_factor(const std::string& mm_projector_type);

struct PreprocessedImage {
  std::vector<float> data;  // [num_tiles, 3, tile_size, tile_size]
  int num_tiles = 0;
  int tile_size = 0;
  int block_rows = 0;  // dynamic_s2 block_size; 0 otherwise
  int block_cols = 0;
  TensorView view() {
    return TensorView(data.data(), DType::kF32, Shape{num_tiles, 3, tile_size, tile_size});
  }
};

// Normalises one image_size x image_size tile (resized first if needed) into CHW floats:
// float32(v * rescale_factor computed in double), then (x - mean) / std in float32 (HF order).
Status normalize_tile(const Image& tile, const PreprocessConfig& config, float* out);

// single_image = false is the multi-image / video path: no tiling, one image_size^2 resize.
StatusOr<PreprocessedImage> preprocess_image(const Image& image, const PreprocessConfig& config,
                                             bool single_image = true);

// ceil((image_size / patch_size) / k)^2: 256 for 448/14 with 2x2, 121 with 3x3.
int64_t tokens_per_tile(const PreprocessConfig& config);
// LLM tokens for one width x height image: dynamic_s2 tokens_per_tile * rows * cols; dynamic
// tokens_per_tile * (tiles + thumbnail); otherwise (or !single_image) tokens_per_tile.
int64_t image_token_count(const PreprocessConfig& config, int width, int height,
                          bool single_image = true);

}  // namespace vila
