// Preprocessing config loading and VILA's image preprocessing (tiling, then per-channel
// rescale + normalisation into (tiles, 3, S, S) fp32); the resizes and the normalisation of all
// tile rows run on the vision thread pool, bit-identical to one thread.
#include "vision/preprocess.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "format/json_config.h"
#include "vision/resize.h"
#include "vision/tiling.h"

namespace vila {
namespace {

constexpr int64_t kMinParallelRows = 16;  // rows below which normalising stays on one thread

bool is_dynamic_s2(const PreprocessConfig& c) {
  return c.image_aspect_ratio.find("dynamic_s2") != std::string::npos;
}
bool is_dynamic(const PreprocessConfig& c) {
  return !is_dynamic_s2(c) && c.image_aspect_ratio.find("dynamic") != std::string::npos;
}

StatusOr<std::vector<int>> parse_scales(const JsonFile& file, const nlohmann::json& v) {
  std::vector<int> scales;
  if (v.is_string()) {
    std::stringstream ss(v.get<std::string>());
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        size_t used = 0;
        const int s = std::stoi(item, &used);
        scales.push_back(s);
      } catch (...) {
        return invalid_argument(file.path + ": field 's2_scales' has a bad entry '" + item + "'");
      }
    }
  } else if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_number_integer()) {
        return invalid_argument(file.path + ": field 's2_scales' must hold integers");
      }
      scales.push_back(e.get<int>());
    }
  } else if (!v.is_null()) {
    return invalid_argument(file.path + ": field 's2_scales' must be a string or a list");
  }
  for (int s : scales) {
    if (s <= 0) return invalid_argument(file.path + ": field 's2_scales' must be positive");
  }
  return scales;
}

StatusOr<std::array<float, 3>> read_triple(const JsonFile& file, const nlohmann::json& obj,
                                           const std::string& key, std::array<float, 3> fallback) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  const auto& v = obj[key];
  if (v.is_number()) return std::array<float, 3>{v.get<float>(), v.get<float>(), v.get<float>()};
  if (!v.is_array() || v.size() != 3 || !v[0].is_number() || !v[1].is_number() ||
      !v[2].is_number()) {
    return invalid_argument(file.path + ": field '" + key + "' must be a list of 3 numbers");
  }
  return std::array<float, 3>{v[0].get<float>(), v[1].get<float>(), v[2].get<float>()};
}

}  // namespace

StatusOr<int> projector_downsample_factor(const std::string& type) {
  if (type.find("3x3") != std::string::npos) return 3;
  if (type.find("downsample") != std::string::npos) return 2;
  if (type == "linear" || type == "mlp2x_gelu" || type.empty()) return 1;
  return unimplemented("unknown mm_projector_type '" + type + "'");
}

StatusOr<PreprocessConfig> load_preprocess_config(const std::string& model_dir) {
  namespace fs = std::filesystem;
  PreprocessConfig c;
  VILA_ASSIGN_OR_RETURN(JsonFile top,
                        load_json_file((fs::path(model_dir) / "config.json").string()));
  const nlohmann::json& j = top.json;
  VILA_ASSIGN_OR_RETURN(c.image_aspect_ratio,
                        json_string_or(top, j, "image_aspect_ratio", c.image_aspect_ratio));
  if (j.contains("s2_scales")) {
    VILA_ASSIGN_OR_RETURN(c.s2_scales, parse_scales(top, j["s2_scales"]));
  }
  VILA_ASSIGN_OR_RETURN(int64_t max_tiles, json_int_or(top, j, "max_tiles", 12));
  VILA_ASSIGN_OR_RETURN(int64_t min_tiles, json_int_or(top, j, "min_tiles", 1));
  if (max_tiles < 1 || max_tiles > 1024 || min_tiles < 1 || min_tiles > 1024) {
    return invalid_argument(top.path + ": min_tiles / max_tiles must be in 1..1024");
  }
  c.max_tiles = static_cast<int>(max_tiles);
  c.min_tiles = static_cast<int>(min_tiles);
  if (is_dynamic_s2(c) && c.s2_scales.empty()) {
    return invalid_argument(top.path +
                            ": image_aspect_ratio is dynamic_s2 but s2_scales is missing");
  }

  // Projector type: mm_projector_cfg in the top config, else mm_projector/config.json.
  std::string projector;
  if (j.contains("mm_projector_cfg") && j["mm_projector_cfg"].is_object()) {
    VILA_ASSIGN_OR_RETURN(projector,
                          json_string_or(top, j["mm_projector_cfg"], "mm_projector_type", ""));
  }
  if (projector.empty()) {
    VILA_ASSIGN_OR_RETURN(projector, json_string_or(top, j, "mm_projector_type", ""));
  }
  const fs::path proj_cfg = fs::path(model_dir) / "mm_projector" / "config.json";
  if (projector.empty() && fs::exists(proj_cfg)) {
    VILA_ASSIGN_OR_RETURN(JsonFile pf, load_json_file(proj_cfg.string()));
    VILA_ASSIGN_OR_RETURN(projector, json_string_or(pf, pf.json, "mm_projector_type", ""));
  }
  auto k = projector_downsample_factor(projector);
  if (!k.ok()) return k.status().with_context(top.path);
  c.projector_downsample = *k;

  // Patch size: vision_tower_cfg, else vision_tower/config.json, else 14.
  int64_t patch = 0;
  if (j.contains("vision_tower_cfg") && j["vision_tower_cfg"].is_object()) {
    VILA_ASSIGN_OR_RETURN(patch, json_int_or(top, j["vision_tower_cfg"], "patch_size", 0));
  }
  const fs::path vt_cfg = fs::path(model_dir) / "vision_tower" / "config.json";
  if (patch == 0 && fs::exists(vt_cfg)) {
    VILA_ASSIGN_OR_RETURN(JsonFile vf, load_json_file(vt_cfg.string()));
    VILA_ASSIGN_OR_RETURN(patch, json_int_or(vf, vf.json, "patch_size", 0));
  }
  c.patch_size = patch > 0 ? static_cast<int>(patch) : 14;

  fs::path pp = fs::path(model_dir) / "vision_tower" / "preprocessor_config.json";
  if (!fs::exists(pp)) pp = fs::path(model_dir) / "preprocessor_config.json";
  VILA_ASSIGN_OR_RETURN(JsonFile pre, load_json_file(pp.string()));
  const nlohmann::json& p = pre.json;
  if (p.contains("size") && p["size"].is_object()) {
    VILA_ASSIGN_OR_RETURN(int64_t h, json_int(pre, p["size"], "height"));
    VILA_ASSIGN_OR_RETURN(int64_t w, json_int(pre, p["size"], "width"));
    if (h != w)
      return invalid_argument(pre.path + ": size must be square, got " + std::to_string(w) + "x" +
                              std::to_string(h));
    c.image_size = static_cast<int>(h);
  } else if (p.contains("size")) {
    VILA_ASSIGN_OR_RETURN(int64_t s, json_int(pre, p, "size"));
    c.image_size = static_cast<int>(s);
  } else {
    return invalid_argument(pre.path + ": field 'size' missing");
  }
  if (c.image_size <= 0 || c.image_size > 8192) {
    return invalid_argument(pre.path + ": size must be in 1..8192");
  }
  VILA_ASSIGN_OR_RETURN(c.image_mean, read_triple(pre, p, "image_mean", c.image_mean));
  VILA_ASSIGN_OR_RETURN(c.image_std, read_triple(pre, p, "image_std", c.image_std));
  for (float s : c.image_std) {
    if (s == 0.0f) return invalid_argument(pre.path + ": image_std must be non-zero");
  }
  VILA_ASSIGN_OR_RETURN(c.rescale_factor,
                        json_number_or(pre, p, "rescale_factor", c.rescale_factor));
  VILA_ASSIGN_OR_RETURN(c.do_rescale, json_bool_or(pre, p, "do_rescale", true));
  VILA_ASSIGN_OR_RETURN(c.do_normalize, json_bool_or(pre, p, "do_normalize", true));
  return c;
}

namespace {

// Rows [y0, y1) of one s x s tile (s, s, 3) uint8 into out (3, s, s) fp32 (rescale, normalise).
void normalize_rows(const Image& tile, const PreprocessConfig& config, int y0, int y1, float* out) {
  const int s = config.image_size;
  const size_t plane = static_cast<size_t>(s) * s;
  for (int y = y0; y < y1; ++y) {
    const uint8_t* row = tile.row(y);
    for (int x = 0; x < s; ++x) {
      for (int c = 0; c < 3; ++c) {
        float v = static_cast<float>(row[3 * x + c]);
        if (config.do_rescale) v = static_cast<float>(row[3 * x + c] * config.rescale_factor);
        if (config.do_normalize) v = (v - config.image_mean[c]) / config.image_std[c];
        out[c * plane + static_cast<size_t>(y) * s + x] = v;
      }
    }
  }
}

}  // namespace

Status normalize_tile(const Image& tile, const PreprocessConfig& config, float* out) {
  const int s = config.image_size;
  Image resized;
  const Image* src = &tile;
  if (tile.width != s || tile.height != s) {
    VILA_ASSIGN_OR_RETURN(resized, resize_bicubic(tile, s, s));
    src = &resized;
  }
  vision_parallel_for(s, kMinParallelRows, [&](int64_t y0, int64_t y1) {
    normalize_rows(*src, config, static_cast<int>(y0), static_cast<int>(y1), out);
  });
  return ok_status();
}

StatusOr<PreprocessedImage> preprocess_image(const Image& image, const PreprocessConfig& config,
                                             bool single_image) {
  if (image.empty()) return invalid_argument("preprocess: empty image");
  std::vector<Image> tiles;
  PreprocessedImage out;
  const int s = config.image_size;
  if (single_image && is_dynamic_s2(config)) {
    VILA_ASSIGN_OR_RETURN(S2Tiles t,
                          dynamic_s2_preprocess(image, config.s2_scales, config.max_tiles, s));
    tiles = std::move(t.tiles);
    out.block_rows = t.rows;
    out.block_cols = t.cols;
  } else if (single_image && is_dynamic(config)) {
    VILA_ASSIGN_OR_RETURN(tiles, dynamic_preprocess(image, config.min_tiles, config.max_tiles, s,
                                                    /*use_thumbnail=*/true));
  } else if (config.image_aspect_ratio == "pad" && image.width != image.height) {
    // expand2square with the background tuple(int(m * 255) for m in image_mean).
    const int side = std::max(image.width, image.height);
    Image sq(side, side);
    uint8_t bg[3];
    for (int c = 0; c < 3; ++c) bg[c] = static_cast<uint8_t>(config.image_mean[c] * 255.0f);
    for (size_t i = 0; i < sq.pixels.size(); ++i) sq.pixels[i] = bg[i % 3];
    const int ox = (side - image.width) / 2;
    const int oy = (side - image.height) / 2;
    for (int y = 0; y < image.height; ++y) {
      std::copy(image.row(y), image.row(y) + 3 * static_cast<size_t>(image.width),
                sq.row(y + oy) + 3 * static_cast<size_t>(ox));
    }
    tiles.push_back(std::move(sq));
  } else {
    tiles.push_back(image);  // "resize" and the multi-image path: resized in normalize_tile
  }
  out.num_tiles = static_cast<int>(tiles.size());
  out.tile_size = s;
  // Tiles not yet s x s ("resize", multi-image) are resized first (each resize is parallel);
  // then every (tile, row) pair is normalised in parallel into (num_tiles, 3, s, s).
  for (Image& tile : tiles) {
    if (tile.width != s || tile.height != s) {
      VILA_ASSIGN_OR_RETURN(tile, resize_bicubic(tile, s, s));
    }
  }
  const size_t tile_floats = 3 * static_cast<size_t>(s) * s;
  out.data.resize(tiles.size() * tile_floats);
  const int64_t n_rows = static_cast<int64_t>(tiles.size()) * s;
  vision_parallel_for(n_rows, kMinParallelRows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1;) {  // rows r .. of tile r / s, up to the tile's end or r1
      const int64_t t = r / s;
      const int y0 = static_cast<int>(r - t * s);
      const int y1 = static_cast<int>(std::min<int64_t>(r1 - t * s, s));
      normalize_rows(tiles[t], config, y0, y1, out.data.data() + t * tile_floats);
      r = t * s + y1;
    }
  });
  return out;
}

int64_t tokens_per_tile(const PreprocessConfig& config) {
  const int64_t g = config.patch_size > 0 ? config.image_size / config.patch_size : 0;
  const int64_t k = config.projector_downsample > 0 ? config.projector_downsample : 1;
  const int64_t side = (g + k - 1) / k;
  return side * side;
}

int64_t image_token_count(const PreprocessConfig& config, int width, int height,
                          bool single_image) {
  const int64_t per_tile = tokens_per_tile(config);
  if (!single_image || width <= 0 || height <= 0) return per_tile;
  if (is_dynamic_s2(config)) {
    const TileGrid g =
        dynamic_s2_grid(width, height, config.s2_scales, config.max_tiles, config.image_size);
    return per_tile * g.rows * g.cols;
  }
  if (is_dynamic(config)) {
    const TileGrid g =
        dynamic_grid(width, height, config.min_tiles, config.max_tiles, config.image_size);
    const int64_t n = static_cast<int64_t>(g.rows) * g.cols;
    return per_tile * (n > 1 ? n + 1 : n);
  }
  return per_tile;
}

}  // namespace vila
