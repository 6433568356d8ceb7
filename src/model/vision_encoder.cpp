// VisionEncoder: config parsing and the three encode paths (see vision_encoder.h).
//
// Dimension legend
//   N  tiles of the media item      S  tile size (pixels)       L  SigLIP tokens per tile (g*g)
//   C  SigLIP hidden                K  S2 scales                 H  LLM hidden
//   g  tile side in tokens          g' block side after the projector (sqrt of its tokens)
#include "model/vision_encoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <string>

#include "core/logging.h"
#include "core/mapped_file.h"
#include "format/json_config.h"
#include "model/s2_merge.h"

namespace vila {

namespace {

std::string basename_of(const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// The subfolder named by `<cfg_key>._name_or_path` when it holds a config.json, else `fallback`.
std::string submodule_dir(const std::string& dir, const nlohmann::json& top, const char* cfg_key,
                          const char* fallback) {
  auto it = top.find(cfg_key);
  if (it != top.end() && it->is_object()) {
    auto name = it->find("_name_or_path");
    if (name != it->end() && name->is_string()) {
      const std::string candidate = path_join(dir, basename_of(name->get<std::string>()));
      if (file_exists(path_join(candidate, "config.json"))) return candidate;
    }
  }
  return path_join(dir, fallback);
}

// s2_scales: "448,896,1344" (VILA stores a string) or a list of integers.
StatusOr<std::vector<int64_t>> parse_scales(const JsonFile& file, const nlohmann::json& top) {
  std::vector<int64_t> scales;
  auto it = top.find("s2_scales");
  if (it == top.end() || it->is_null()) {
    return invalid_argument(file.path + ": field 's2_scales' missing (needed by dynamic_s2)");
  }
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) {
        return invalid_argument(file.path + ": field 's2_scales' must hold integers");
      }
      scales.push_back(v.get<int64_t>());
    }
  } else if (it->is_string()) {
    std::stringstream ss(it->get<std::string>());
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        size_t used = 0;
        scales.push_back(std::stoll(item, &used));
      } catch (...) {
        return invalid_argument(file.path + ": field 's2_scales' '" + it->get<std::string>() +
                                "' is not a comma-separated list of integers");
      }
    }
  } else {
    return invalid_argument(file.path + ": field 's2_scales' must be a string or a list");
  }
  if (scales.empty()) return invalid_argument(file.path + ": field 's2_scales' is empty");
  std::sort(scales.begin(), scales.end());  // VisionTowerDynamicS2 sorts them too
  for (size_t i = 0; i < scales.size(); ++i) {
    if (scales[i] <= 0 || scales[i] % scales[0] != 0 || (i > 0 && scales[i] == scales[i - 1])) {
      return invalid_argument(file.path +
                              ": field 's2_scales' must be distinct multiples of the smallest");
    }
  }
  return scales;
}

}  // namespace

StatusOr<std::unique_ptr<VisionEncoder>> VisionEncoder::load(const std::string& model_dir) {
  VILA_ASSIGN_OR_RETURN(JsonFile top, load_json_file(path_join(model_dir, "config.json")));
  if (!top.json.is_object()) return invalid_argument(top.path + ": expected a JSON object");
  const nlohmann::json& j = top.json;
  std::unique_ptr<VisionEncoder> enc(new VisionEncoder());
  VisionConfig& c = enc->config_;
  VILA_ASSIGN_OR_RETURN(c.select_layer, json_int_or(top, j, "mm_vision_select_layer", -2));
  VILA_ASSIGN_OR_RETURN(c.select_feature,
                        json_string_or(top, j, "mm_vision_select_feature", "patch"));
  if (c.select_feature != "patch" && c.select_feature != "cls_patch") {
    return unimplemented(top.path + ": field 'mm_vision_select_feature' is '" + c.select_feature +
                         "' (supported: patch, cls_patch)");
  }
  VILA_ASSIGN_OR_RETURN(c.image_aspect_ratio, json_string_or(top, j, "image_aspect_ratio", ""));
  VILA_ASSIGN_OR_RETURN(c.dynamic_s2, json_bool_or(top, j, "dynamic_s2", false));
  VILA_ASSIGN_OR_RETURN(bool s2, json_bool_or(top, j, "s2", false));
  if (s2 && !c.dynamic_s2) {
    return unimplemented(top.path + ": field 's2' is true (s2wrapper multiscale, VILA1.5-S2)");
  }
  if (c.dynamic_s2) {
    VILA_ASSIGN_OR_RETURN(c.s2_scales, parse_scales(top, j));
    VILA_ASSIGN_OR_RETURN(c.s2_resize_idx, json_int_or(top, j, "s2_resize_output_to_scale_idx", 0));
    const auto n_scales = static_cast<int64_t>(c.s2_scales.size());
    if (c.s2_resize_idx < -n_scales || c.s2_resize_idx >= n_scales) {
      return invalid_argument(top.path + ": field 's2_resize_output_to_scale_idx' is " +
                              std::to_string(c.s2_resize_idx) + ", outside the " +
                              std::to_string(n_scales) + " s2_scales");
    }
  }

  c.vision_dir = submodule_dir(model_dir, j, "vision_tower_cfg", "vision_tower");
  c.projector_dir = submodule_dir(model_dir, j, "mm_projector_cfg", "mm_projector");
  VILA_ASSIGN_OR_RETURN(enc->tower_, SiglipTower::load(c.vision_dir, c.select_layer));
  const SiglipConfig& vc = enc->tower_->config();
  // VILA interpolates position embeddings to `vision_resolution` only when it builds a model for
  // training (vision_resolution_elevation); a saved checkpoint already holds the resized table and
  // its image_size, and inference never resizes. We do the same: the field is read and ignored.
  VILA_ASSIGN_OR_RETURN(int64_t resolution, json_int_or(top, j, "vision_resolution", -1));
  if (resolution != -1 && resolution != vc.image_size) {
    VILA_LOG_INFO(top.path + ": vision_resolution " + std::to_string(resolution) +
                  " ignored at inference, as VILA does (vision tower image_size " +
                  std::to_string(vc.image_size) + ")");
  }

  const int64_t n_scales = c.dynamic_s2 ? static_cast<int64_t>(c.s2_scales.size()) : 1;
  VILA_ASSIGN_OR_RETURN(c.mm_hidden, json_int_or(top, j, "mm_hidden_size", vc.hidden * n_scales));
  if (c.mm_hidden != vc.hidden * n_scales) {
    return invalid_argument(
        top.path + ": field 'mm_hidden_size' is " + std::to_string(c.mm_hidden) + ", expected " +
        std::to_string(vc.hidden * n_scales) + " (vision hidden " + std::to_string(vc.hidden) +
        " x " + std::to_string(n_scales) + " scales)");
  }
  if (j.contains("hidden_size") && !j["hidden_size"].is_null()) {
    VILA_ASSIGN_OR_RETURN(c.llm_hidden, json_int(top, j, "hidden_size"));
  } else if (j.contains("llm_cfg") && j["llm_cfg"].is_object()) {
    VILA_ASSIGN_OR_RETURN(c.llm_hidden, json_int(top, j["llm_cfg"], "hidden_size"));
  } else {
    return invalid_argument(top.path + ": field 'hidden_size' missing (nor llm_cfg.hidden_size)");
  }
  VILA_ASSIGN_OR_RETURN(enc->projector_,
                        Projector::load(c.projector_dir, c.mm_hidden, c.llm_hidden));
  if (enc->projector_->tokens_out(enc->tower_tokens()) < 0) {
    return invalid_argument(c.projector_dir + ": projector " + enc->projector_->type() +
                            " needs a square token grid, the vision tower gives " +
                            std::to_string(enc->tower_tokens()) + " tokens per tile");
  }
  return enc;
}

int64_t VisionEncoder::tower_tokens() const {
  const int64_t p = tower_->tokens();
  return config_.select_feature == "patch" ? p - 1 : p;
}

Status VisionEncoder::tower_forward(const float* tiles, int64_t n_tiles, std::vector<float>& out) {
  const int64_t P = tower_->tokens(), C = tower_->config().hidden, L = tower_tokens();
  out.resize(static_cast<size_t>(n_tiles * P * C));
  VILA_RETURN_IF_ERROR(tower_->forward(tiles, n_tiles, out.data()));
  if (L != P) {  // "patch": drop token 0 of every tile (VisionTower.feature_select)
    for (int64_t n = 0; n < n_tiles; ++n) {
      std::copy(out.begin() + n * P * C + C, out.begin() + (n + 1) * P * C,
                out.begin() + n * L * C);
    }
    out.resize(static_cast<size_t>(n_tiles * L * C));
  }
  return ok_status();
}

StatusOr<std::vector<float>> VisionEncoder::encode(const ImageTiles& tiles, int64_t* n_tokens) {
  const int64_t S = image_size(), C = tower_->config().hidden, L = tower_tokens();
  const int64_t H = llm_hidden(), N = tiles.n_tiles;
  const int64_t cin = tower_->config().n_channels;
  if (n_tokens == nullptr) return invalid_argument("vision encode: n_tokens is null");
  if (N <= 0) return invalid_argument("vision encode: no tiles");
  if (tiles.size != S) {
    return invalid_argument("vision encode: tiles are " + std::to_string(tiles.size) +
                            " px, the vision tower takes " + std::to_string(S));
  }
  if (static_cast<int64_t>(tiles.pixels.size()) != N * cin * S * S) {
    return invalid_argument("vision encode: pixels hold " + std::to_string(tiles.pixels.size()) +
                            " floats, expected (" + std::to_string(N) + ", " + std::to_string(cin) +
                            ", " + std::to_string(S) + ", " + std::to_string(S) + ")");
  }
  if ((tiles.rows > 0) != (tiles.cols > 0) || tiles.rows < 0 || tiles.cols < 0) {
    return invalid_argument("vision encode: rows and cols must both be set or both be 0");
  }
  if (tiles.rows > 0 && !config_.dynamic_s2) {
    return invalid_argument(
        "vision encode: a block grid was given but the model is not dynamic_s2");
  }

  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  std::vector<float> features;  // (N, L, C)
  VILA_RETURN_IF_ERROR(tower_forward(tiles.pixels.data(), N, features));
  auto t1 = Clock::now();
  timings_.tower_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
  // Everything after the tower counts as projector time.
  struct ProjectorClock {
    VisionTimings& timings;
    Clock::time_point start;
    ~ProjectorClock() {
      timings.projector_ms +=
          std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    }
  } projector_clock{timings_, t1};
  std::vector<float> out;

  if (tiles.rows > 0) {
    // Dynamic S2: blocks (rows*cols, L, K*C) -> projector -> (rows*cols, L', H) -> raster.
    const int64_t g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(L))));
    if (g * g != L) return invalid_argument("vision encode: dynamic_s2 needs square tile tokens");
    std::vector<float> blocks;
    int64_t rows = 0, cols = 0;  // block grid after the merge (the grid of the resize scale)
    VILA_RETURN_IF_ERROR(s2_merge_features(features.data(), N, g, C, config_.s2_scales, tiles.rows,
                                           tiles.cols, config_.s2_resize_idx, blocks, &rows,
                                           &cols));
    const int64_t n_blocks = rows * cols, lp = projector_->tokens_out(L);
    const int64_t gp = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(lp))));
    std::vector<float> projected(static_cast<size_t>(n_blocks * lp * H));
    VILA_RETURN_IF_ERROR(projector_->forward(blocks.data(), n_blocks, L, projected.data()));
    out.resize(projected.size());  // (rows*g', cols*g', H) row-major
    merge_chessboard(projected.data(), rows, cols, gp, H, out.data());
    *n_tokens = n_blocks * lp;
    return out;
  }

  const int64_t lp = projector_->tokens_out(L);
  out.resize(static_cast<size_t>(N * lp * H));
  if (config_.dynamic_s2) {
    // No grid: features repeated K times along channels ([f | f | f]) per tile.
    const auto K = static_cast<int64_t>(config_.s2_scales.size());
    std::vector<float> repeated(static_cast<size_t>(L * K * C));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t t = 0; t < L; ++t) {
        const float* src = features.data() + (n * L + t) * C;
        for (int64_t k = 0; k < K; ++k) {
          std::copy(src, src + C, repeated.data() + (t * K + k) * C);
        }
      }
      VILA_RETURN_IF_ERROR(projector_->forward(repeated.data(), 1, L, out.data() + n * lp * H));
    }
  } else {
    VILA_RETURN_IF_ERROR(projector_->forward(features.data(), N, L, out.data()));
  }
  *n_tokens = N * lp;
  return out;
}

}  // namespace vila
