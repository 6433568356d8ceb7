// VilaModel::build_prompt: images + text into LLM input rows, following VILA's generate_content
// (llava/model/llava_arch.py, llava/model/encoders/image/basic.py) as recorded in
// docs/fixtures-vision.md.
#include <chrono>
#include <string_view>

#include "model/vila_model.h"

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

  // Media rows in prompt order.
  if (!vision_) {
    VILA_ASSIGN_OR_RETURN(vision_, VisionEncoder::load(dir_));
  }
  vision_->reset_timings();
  std::vector<std::vector<float>> media_rows;
  result.image_tokens.assign(image_paths.size(), 0);
  for (const ContentPart& part : parts) {
    if (part.image < 0) continue;
    for (const ImageTiles& item : items[static_cast<size_t>(part.image)]) {
      int64_t n_tokens = 0;
      VILA_ASSIGN_OR_RETURN(std::vector<float> rows, vision_->encode(item, &n_tokens));
      result.image_tokens[static_cast<size_t>(part.image)] += n_tokens;
      media_rows.push_back(std::move(rows));
    }
  }
  result.vision_ms = vision_->timings().tower_ms;
  result.projector_ms = vision_->timings().projector_ms;

  // Splice: each <image> id -> its rows + embed("\n").
  const int64_t hidden = llm_->config().hidden;
  if (vision_->llm_hidden() != hidden) {
    return invalid_argument(dir_ + ": the projector outputs " +
                            std::to_string(vision_->llm_hidden()) +
                            " channels but the LLM's hidden size is " + std::to_string(hidden));
  }
  // BasicImageEncoder's end tokens: tokenizer("\n").input_ids, special tokens included, so a
  // Llama tokenizer gives [<s>, "▁", "\n"] and Qwen2 gives ["\n"].
  std::vector<int32_t> newline;
  if (tokenizer_->add_bos_token && tokenizer_->bos_id) newline.push_back(*tokenizer_->bos_id);
  for (int32_t id : tokenizer_->encode("\n")) newline.push_back(id);
  std::vector<float> row(static_cast<size_t>(hidden));
  size_t next_media = 0;
  for (int32_t id : result.input.ids) {
    if (id == *image_token_id_) {
      if (next_media == media_rows.size()) {
        return invalid_argument("the prompt text contains more <image> tokens than images");
      }
      const std::vector<float>& rows = media_rows[next_media++];
      const auto first_row = static_cast<int64_t>(result.input.embeds.size()) / hidden;
      result.media_rows.emplace_back(first_row, static_cast<int64_t>(rows.size()) / hidden);
      result.input.embeds.insert(result.input.embeds.end(), rows.begin(), rows.end());
      for (int32_t nl : newline) {
        VILA_RETURN_IF_ERROR(llm_->embed(&nl, 1, row.data()));
        result.input.embeds.insert(result.input.embeds.end(), row.begin(), row.end());
      }
      continue;
    }
    VILA_RETURN_IF_ERROR(llm_->embed(&id, 1, row.data()));
    result.input.embeds.insert(result.input.embeds.end(), row.begin(), row.end());
  }
  if (next_media != media_rows.size()) {
    return internal_error("assembled " + std::to_string(media_rows.size()) +
                          " media items but the tokenized prompt holds " +
                          std::to_string(next_media) + " <image> tokens");
  }
  return result;
}

}  // namespace vila
