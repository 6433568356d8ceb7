// Images of training samples as normalised tiles: data::ImageRef -> (3, S, S) fp32, through the
// same preprocessing the inference vision tower applies to one tile (vision/preprocess.h, the
// multi-image path): RGB 8-bit image -> resize to image_size (Pillow bicubic, skipped when the
// size already matches) -> x * rescale_factor -> (x - mean) / std, channel-first.
//  FashionImageSource: in-memory 28 x 28 grey images of a data::FashionSplit by index; grey is
//    replicated into R, G and B as PIL's convert("RGB") does for an "L" image (what inference
//    does with the same image saved as a grey PNG).
//  FileImageSource: JPEG / PNG files, a relative path resolved against an image folder.
// Errors name the image and the sample's origin: NotFound (missing file), DataLoss (corrupt),
// OutOfRange (bad index), InvalidArgument (a reference of the wrong kind).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/fashion_mnist.h"
#include "data/samples.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace vila::train {

class ImageSource {
 public:
  virtual ~ImageSource() = default;
  // S of the tiles.
  virtual int64_t image_size() const = 0;
  // (3, S, S) normalised tile of `image`; `origin` names the sample in error messages.
  virtual StatusOr<std::vector<float>> tile(const data::ImageRef& image,
                                            const std::string& origin) const = 0;
};

// Shared by both sources: one tile of a decoded image, as inference preprocesses each of several
// images (preprocess_image with single_image = false).
StatusOr<std::vector<float>> preprocess_single_tile(const Image& image,
                                                    const PreprocessConfig& config);

class FashionImageSource : public ImageSource {
 public:
  // `split` must outlive the source.
  FashionImageSource(const data::FashionSplit& split, PreprocessConfig config)
      : split_(split), config_(std::move(config)) {}
  int64_t image_size() const override { return config_.image_size; }
  StatusOr<std::vector<float>> tile(const data::ImageRef& image,
                                    const std::string& origin) const override;

 private:
  const data::FashionSplit& split_;
  PreprocessConfig config_;
};

class FileImageSource : public ImageSource {
 public:
  // `root`: folder for relative paths (empty: as given).
  FileImageSource(std::string root, PreprocessConfig config, ImageLoadOptions load_options = {})
      : root_(std::move(root)), config_(std::move(config)), load_options_(load_options) {}
  int64_t image_size() const override { return config_.image_size; }
  StatusOr<std::vector<float>> tile(const data::ImageRef& image,
                                    const std::string& origin) const override;
  // The file an ImageRef names.
  std::string resolve(const std::string& path) const;

 private:
  std::string root_;
  PreprocessConfig config_;
  ImageLoadOptions load_options_;
};

}  // namespace vila::train
