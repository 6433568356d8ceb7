// Fashion-MNIST and file images -> normalised single tiles (see image_source.h).
#include "train/image_source.h"

#include <utility>

namespace vila::train {

StatusOr<std::vector<float>> preprocess_single_tile(const Image& image,
                                                    const PreprocessConfig& config) {
  VILA_ASSIGN_OR_RETURN(PreprocessedImage pre,
                        preprocess_image(image, config, /*single_image=*/false));
  if (pre.num_tiles != 1 || pre.tile_size != config.image_size) {
    return internal_error("image source: preprocessing gave " + std::to_string(pre.num_tiles) +
                          " tiles of " + std::to_string(pre.tile_size) + ", expected one of " +
                          std::to_string(config.image_size));
  }
  return std::move(pre.data);  // (3, S, S)
}

StatusOr<std::vector<float>> FashionImageSource::tile(const data::ImageRef& image,
                                                      const std::string& origin) const {
  if (!image.in_memory()) {
    return invalid_argument("fashion images: " + origin + ": image '" + image.path +
                            "' is a file, this source holds in-memory images by index");
  }
  if (image.index >= split_.count) {
    return out_of_range("fashion images: " + origin + ": image index " +
                        std::to_string(image.index) + " is past the " + split_.name + " split (" +
                        std::to_string(split_.count) + " images)");
  }
  // (28, 28) grey -> (28, 28, 3) RGB, as PIL's convert("RGB") of an "L" image.
  Image rgb(data::kFashionSide, data::kFashionSide);
  const uint8_t* grey = split_.image(image.index);
  for (size_t i = 0; i < static_cast<size_t>(data::kFashionSide) * data::kFashionSide; ++i) {
    for (size_t c = 0; c < 3; ++c) rgb.pixels[i * 3 + c] = grey[i];
  }
  StatusOr<std::vector<float>> out = preprocess_single_tile(rgb, config_);
  if (!out.ok()) return out.status().with_context("fashion images: " + origin);
  return out;
}

std::string FileImageSource::resolve(const std::string& path) const {
  if (root_.empty() || path.empty() || path[0] == '/') return path;
  return root_ + "/" + path;
}

StatusOr<std::vector<float>> FileImageSource::tile(const data::ImageRef& image,
                                                   const std::string& origin) const {
  if (image.in_memory()) {
    return invalid_argument("image files: " + origin + ": image #" + std::to_string(image.index) +
                            " is an in-memory index, this source reads files");
  }
  const std::string path = resolve(image.path);
  StatusOr<Image> decoded = load_image(path, load_options_);
  if (!decoded.ok()) {
    // The loader's message names the file; keep its code (NotFound / DataLoss / ...).
    return decoded.status().with_context("image of sample " + origin);
  }
  StatusOr<std::vector<float>> out = preprocess_single_tile(*decoded, config_);
  if (!out.ok()) return out.status().with_context("image " + path + " of sample " + origin);
  return out;
}

}  // namespace vila::train
