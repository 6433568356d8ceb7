// VisionEncoder: the vision side of an NVILA/VILA checkpoint (vision_tower/ + mm_projector/ +
// the top config.json), from preprocessed tiles to LLM input embeddings. CPU fp32, the oracle.
//
// Paths (VILA llava_arch.py encode_images / merge_features_for_dynamic_s2):
//  - dynamic_s2 with a block grid (rows, cols): SigLIP on every tile; dynamic-S2 merge into
//    rows*cols blocks of (g*g, K*C); projector per block; the projected blocks chessboard-merged
//    into a (rows*g', cols*g') raster, flattened row-major.
//  - dynamic_s2 without a grid (multi-image, video frames): each tile's (g*g, C) features repeated
//    K times along channels ([f | f | f]), projector, tokens concatenated in tile order.
//  - otherwise (resize / dynamic / NVILA-Lite): projector on each tile, tokens concatenated in
//    tile order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/projector.h"
#include "model/siglip.h"

namespace vila {

// Preprocessed, normalised tiles of ONE media item.
struct ImageTiles {
  std::vector<float> pixels;  // (n_tiles, 3, size, size)
  int64_t n_tiles = 0, size = 0;
  // dynamic_s2: block grid of the last scale (tile order: the scale-448 tile, the 4 tiles of 896,
  // then rows*cols tiles); 0 = no S2 merge.
  int64_t rows = 0, cols = 0;
};

// What the top config.json says about the vision side.
struct VisionConfig {
  int64_t select_layer = -2;             // mm_vision_select_layer
  std::string select_feature = "patch";  // mm_vision_select_feature: patch drops token 0
  std::string image_aspect_ratio;        // image_aspect_ratio (informational)
  bool dynamic_s2 = false;               // dynamic_s2
  std::vector<int64_t> s2_scales;        // s2_scales, sorted (dynamic_s2 only)
  int64_t s2_resize_idx = 0;             // s2_resize_output_to_scale_idx (NVILA: -1)
  int64_t mm_hidden = 0;                 // mm_hidden_size (projector input channels)
  int64_t llm_hidden = 0;                // hidden_size, or llm_cfg.hidden_size
  std::string vision_dir, projector_dir;
};

// Wall time spent in encode(), accumulated until reset.
struct VisionTimings {
  double tower_ms = 0;      // SigLIP
  double projector_ms = 0;  // S2 merge + projector + chessboard merge
};

class VisionEncoder {
 public:
  // model_dir: NVILA-layout folder. Reads config.json, vision_tower/ and mm_projector/ (the
  // subfolders named by vision_tower_cfg / mm_projector_cfg _name_or_path, as VilaModel does).
  static StatusOr<std::unique_ptr<VisionEncoder>> load(const std::string& model_dir);

  // SigLIP selected-layer features: out (n_tiles, L, C).
  Status tower_forward(const float* tiles, int64_t n_tiles, std::vector<float>& out);

  // Projected tokens (n_tokens, llm_hidden) for one media item (see the paths above).
  StatusOr<std::vector<float>> encode(const ImageTiles& tiles, int64_t* n_tokens);

  int64_t llm_hidden() const { return projector_->out_channels(); }
  int64_t image_size() const { return tower_->config().image_size; }
  // Tokens of one tile through the projector (without S2 merge), e.g. 256 or 121.
  int64_t tokens_per_tile() const { return projector_->tokens_out(tower_tokens()); }
  // SigLIP tokens per tile after feature selection (L).
  int64_t tower_tokens() const;

  const VisionConfig& config() const { return config_; }
  const VisionTimings& timings() const { return timings_; }
  void reset_timings() { timings_ = {}; }
  const SiglipTower& tower() const { return *tower_; }
  const Projector& projector() const { return *projector_; }

 private:
  VisionEncoder() = default;

  VisionConfig config_;
  VisionTimings timings_;
  std::unique_ptr<SiglipTower> tower_;
  std::unique_ptr<Projector> projector_;
};

}  // namespace vila
