// VilaModel::build_prompt: images + text into LLM input rows, following VILA's generate_content
// (llava/model/llava_arch.py, llava/model/encoders/image/basic.py) as recorded in
// docs/fixtures-vision.md.
#include <algorithm>
#include <chrono>
#include <string_view>

#include "model/vila_model.h"
#include "model/vision_cuda.h"

namespace vila {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

constexpr std::string_view kImageMarker = "<image>";

// Python's str.strip() over ASCII whitespace.
std::string strip(const std::string& s) {
  constexpr const char* kSpace = " \t\n\r\f\v";
  const size_t begin = s.find_first_not_of(kSpace);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(kSpace) - begin + 1);
}

// One part of the user's content: text, or the index of an image.
struct ContentPart {
  std::string text;
  int image = -1;
};

// Splits `prompt` at <image> markers; with no marker the images come first (VILA's order).
StatusOr<std::vector<ContentPart>> content_parts(const std::string& prompt, size_t n_images) {
  std::vector<ContentPart> parts;
  size_t markers = 0;
  size_t pos = 0;
  for (size_t hit; (hit = prompt.find(kImageMarker, pos)) != std::string::npos;) {
    if (hit > pos) parts.push_back({prompt.substr(pos, hit - pos), -1});
    parts.push_back({"", static_cast<int>(markers++)});
    pos = hit + kImageMarker.size();
  }
  if (pos < prompt.size()) parts.push_back({prompt.substr(pos), -1});
  if (markers == 0) {
    std::vector<ContentPart> with_images;
    for (size_t i = 0; i < n_images; ++i) with_images.push_back({"", static_cast<int>(i)});
    with_images.insert(with_images.end(), parts.begin(), parts.end());
    return with_images;
  }
  if (markers != n_images) {
    return invalid_argument("the prompt has " + std::to_string(markers) +
                            " <image> marker(s) but " + std::to_string(n_images) +
                            " --image file(s) were given");
  }
  return parts;
}
}  // namespace

StatusOr<MediaPrompt> VilaModel::build_prompt(const std::string& prompt,
                                              const std::vector<std::string>& image_paths, bool raw,
                                              const ImageLoadOptions& image_options) {
  MediaPrompt result;
  VILA_ASSIGN_OR_RETURN(std::vector<ContentPart> parts, content_parts(prompt, image_paths.size()));
  if (image_paths.empty()) {
    result.message = prompt;
    VILA_ASSIGN_OR_RETURN(result.input.ids, encode_prompt(prompt, raw));
    return result;
  }
  if (layout_ != CheckpointLayout::kNvila || !vision_tower_ || !mm_projector_) {
    return invalid_argument(dir_ +
                            ": images need a checkpoint with vision_tower/ and "
                            "mm_projector/ (this is a text-only model)");
  }
  if (!image_token_id_) {
    return invalid_argument(llm_dir_ + ": the tokenizer has no <image> token");
  }
  if (!preprocess_) {
    VILA_ASSIGN_OR_RETURN(PreprocessConfig config, load_preprocess_config(dir_));
    preprocess_ = config;
  }

  // Preprocess every image into media items (tiles grouped as the encoder wants them).
  auto t0 = Clock::now();
  const bool single_image = image_paths.size() == 1;
  // dynamic (NVILA-Lite) single image: every tile (and the thumbnail) is its own media item.
  const bool tile_items = single_image && preprocess_->image_aspect_ratio == "dynamic";
  std::vector<std::vector<ImageTiles>> items(image_paths.size());
  for (size_t i = 0; i < image_paths.size(); ++i) {
    VILA_ASSIGN_OR_RETURN(Image image, load_image(image_paths[i], image_options));
    VILA_ASSIGN_OR_RETURN(PreprocessedImage pre,
                          preprocess_image(image, *preprocess_, single_image));
    const int64_t tile_floats = int64_t{3} * pre.tile_size * pre.tile_size;
    if (tile_items) {
      for (int t = 0; t < pre.num_tiles; ++t) {
        ImageTiles tile;
        tile.pixels.assign(pre.data.begin() + t * tile_floats,
                           pre.data.begin() + (t + 1) * tile_floats);
        tile.n_tiles = 1;
        tile.size = pre.tile_size;
        items[i].push_back(std::move(tile));
      }
    } else {
      ImageTiles tiles;
      tiles.pixels = std::move(pre.data);
      tiles.n_tiles = pre.num_tiles;
      tiles.size = pre.tile_size;
      tiles.rows = pre.block_rows;
      tiles.cols = pre.block_cols;
      items[i].push_back(std::move(tiles));
    }
  }
  result.preprocess_ms = ms_since(t0);

  // The user message: text verbatim, "<image>" per media item (Lite: "<image>\n" per tile).
  for (const ContentPart& part : parts) {
    if (part.image < 0) {
      result.message += part.text;
    } else if (tile_items) {
      for (size_t t = 0; t < items[static_cast<size_t>(part.image)].size(); ++t) {
        result.message.append(kImageMarker).append("\n");
      }
    } else {
      result.message.append(kImageMarker);
    }
  }
  if (!raw) result.message = strip(result.message);
  VILA_ASSIGN_OR_RETURN(result.input.ids, encode_prompt(result.message, raw));

  // Media items in prompt order, and the rows each one becomes.
  if (!vision_) {
    VILA_ASSIGN_OR_RETURN(vision_, VisionEncoder::load(dir_));
  }
  if (cuda_vision_on_ && !cuda_vision_) {
    CudaVisionOptions options;
    options.compute = cuda_vision_dtype_;
    options.device = cuda_vision_device_;
    VILA_ASSIGN_OR_RETURN(cuda_vision_, CudaVisionEncoder::create(*vision_, options));
  }
  CudaVisionEncoder* gpu = cuda_vision_on_ ? cuda_vision_.get() : nullptr;
  result.vision_device = gpu != nullptr ? "cuda" : "cpu";
  const int64_t hidden = llm_->config().hidden;
  const int64_t vision_hidden = gpu != nullptr ? gpu->llm_hidden() : vision_->llm_hidden();
  if (vision_hidden != hidden) {
    return invalid_argument(dir_ + ": the projector outputs " + std::to_string(vision_hidden) +
                            " channels but the LLM's hidden size is " + std::to_string(hidden));
  }
  vision_->reset_timings();
  if (gpu != nullptr) gpu->reset_timings();
  std::vector<const ImageTiles*> media;  // in prompt order
  std::vector<int64_t> media_tokens;
  std::vector<std::vector<float>> cpu_rows;  // CPU: the rows of each item
  result.image_tokens.assign(image_paths.size(), 0);
  for (const ContentPart& part : parts) {
    if (part.image < 0) continue;
    for (const ImageTiles& item : items[static_cast<size_t>(part.image)]) {
      int64_t n_tokens = 0;
      if (gpu != nullptr) {  // encoded below, straight into the prompt rows
        VILA_ASSIGN_OR_RETURN(n_tokens, gpu->output_tokens(item));
      } else {
        VILA_ASSIGN_OR_RETURN(std::vector<float> rows, vision_->encode(item, &n_tokens));
        cpu_rows.push_back(std::move(rows));
      }
      result.image_tokens[static_cast<size_t>(part.image)] += n_tokens;
      media.push_back(&item);
      media_tokens.push_back(n_tokens);
    }
  }

  // Splice: each <image> id -> its rows + embed("\n"). BasicImageEncoder's end tokens:
  // tokenizer("\n").input_ids, special tokens included, so a Llama tokenizer gives
  // [<s>, "▁", "\n"] and Qwen2 gives ["\n"]. The rows are laid out first and filled in place,
  // so the (large) embedding matrix is allocated once.
  std::vector<int32_t> newline;
  if (tokenizer_->add_bos_token && tokenizer_->bos_id) newline.push_back(*tokenizer_->bos_id);
  for (int32_t id : tokenizer_->encode("\n")) newline.push_back(id);
  int64_t total_rows = 0;
  size_t next_media = 0;
  for (int32_t id : result.input.ids) {
    if (id != *image_token_id_) {
      ++total_rows;
      continue;
    }
    if (next_media == media.size()) {
      return invalid_argument("the prompt text contains more <image> tokens than images");
    }
    total_rows += media_tokens[next_media++] + static_cast<int64_t>(newline.size());
  }
  std::vector<float>& embeds = result.input.embeds;
  embeds.resize(static_cast<size_t>(total_rows * hidden));
  int64_t row = 0;
  next_media = 0;
  auto embed_ids = [&](const int32_t* ids, int64_t n) -> Status {
    for (int64_t i = 0; i < n; ++i, ++row) {
      VILA_RETURN_IF_ERROR(llm_->embed(&ids[i], 1, embeds.data() + row * hidden));
    }
    return ok_status();
  };
  for (const int32_t& id : result.input.ids) {
    if (id != *image_token_id_) {
      VILA_RETURN_IF_ERROR(embed_ids(&id, 1));
      continue;
    }
    const size_t m = next_media++;
    const int64_t n = media_tokens[m];
    result.media_rows.emplace_back(row, n);
    float* dst = embeds.data() + row * hidden;
    if (gpu != nullptr) {
      int64_t got = 0;
      VILA_RETURN_IF_ERROR(gpu->encode_into(*media[m], dst, n * hidden, &got));
      if (got != n) return internal_error("cuda vision: token count changed between calls");
    } else {
      std::copy(cpu_rows[m].begin(), cpu_rows[m].end(), dst);
    }
    row += n;
    VILA_RETURN_IF_ERROR(embed_ids(newline.data(), static_cast<int64_t>(newline.size())));
  }
  const VisionTimings& vt = gpu != nullptr ? gpu->timings() : vision_->timings();
  result.vision_ms = vt.tower_ms;
  result.projector_ms = vt.projector_ms;
  if (next_media != media.size()) {
    return internal_error("assembled " + std::to_string(media.size()) +
                          " media items but the tokenized prompt holds " +
                          std::to_string(next_media) + " <image> tokens");
  }
  return result;
}

}  // namespace vila
