// Fashion-MNIST (Zalando, 2017) as installed by the Debian package dataset-fashion-mnist:
// {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, 60,000 training and 10,000 test images of
// 28 x 28 grey pixels (0 = background, 255 = full intensity) with labels 0..9.
//
// The files' own split is the train / held-out split: `train` trains, `t10k` is never trained on.
// Class names are those of the dataset's README; the lower-case noun forms are for sentences.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "vision/image.h"

namespace vila::data {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
constexpr int kFashionClasses = 10;
constexpr int kFashionSide = 28;  // rows == cols
constexpr int64_t kFashionTrainCount = 60000;
constexpr int64_t kFashionTestCount = 10000;

// README names: "T-shirt/top", "Trouser", ..., "Ankle boot".
const char* fashion_class_name(int label);
// Singular noun for sentences: "T-shirt/top", "trouser", "pullover", ..., "ankle boot".
const char* fashion_noun(int label);
// Plural noun: "T-shirts/tops", "trousers", ..., "ankle boots".
const char* fashion_plural(int label);
// "a" or "an" for fashion_noun(label).
const char* fashion_article(int label);

// Coarse groups the label alone determines (colour, material, ... are not in the data).
enum class FashionCategory { kTop, kBottom, kDress, kFootwear, kBag };
constexpr int kFashionCategories = 5;
FashionCategory fashion_category(int label);
// "top", "bottom", "dress", "footwear", "bag".
const char* fashion_category_name(FashionCategory category);

// One file pair of the dataset. Images are (count, 28, 28) uint8, labels (count) in [0, 10).
struct FashionSplit {
  std::string name;  // "train" or "t10k"
  int64_t count = 0;
  std::vector<uint8_t> pixels;  // (count, kFashionSide, kFashionSide) uint8, row-major
  std::vector<uint8_t> labels;  // (count) uint8

  // (kFashionSide, kFashionSide) uint8 of image i.
  const uint8_t* image(int64_t i) const {
    return pixels.data() + static_cast<size_t>(i) * kFashionSide * kFashionSide;
  }
  int label(int64_t i) const { return labels[static_cast<size_t>(i)]; }
  // Image indices of each class, ascending.
  std::array<std::vector<int64_t>, kFashionClasses> indices_by_class() const;
};

struct FashionMnist {
  FashionSplit train;  // 60,000 images
  FashionSplit test;   // 10,000 held-out images (t10k)
};

// Reads `dir`/`prefix`-images-idx3-ubyte.gz and `prefix`-labels-idx1-ubyte.gz (prefix "train" or
// "t10k"). Errors name the file: NotFound, DataLoss (truncated, wrong magic, images not 28 x 28,
// counts that differ, a label >= 10).
StatusOr<FashionSplit> load_fashion_split(const std::string& dir, const std::string& prefix);
StatusOr<FashionMnist> load_fashion_mnist(const std::string& dir = kFashionMnistDir);

// Upscaling filters for tiles. Both sample at pixel centres: output pixel x reads source
// coordinate u = (x + 0.5) * in / out - 0.5.
//  kNearest:  the source pixel floor(u + 0.5) (exact pixel replication for integer factors).
//  kBilinear: linear interpolation between floor(u) and floor(u) + 1 on each axis, coordinates
//             clamped to the image (OpenCV INTER_LINEAR / torch align_corners=False; no
//             antialiasing, so meant for upscaling), rounded to nearest.
enum class TileFilter { kNearest, kBilinear };

// A (size, size) RGB tile of a grey (rows, cols) uint8 image: grey replicated into R, G and B.
// InvalidArgument for a non-positive size or image dimensions.
StatusOr<Image> grey_to_rgb_tile(const uint8_t* grey, int rows, int cols, int size,
                                 TileFilter filter);
// The tile of image `index` of a split; OutOfRange for a bad index.
StatusOr<Image> fashion_tile(const FashionSplit& split, int64_t index, int size, TileFilter filter);

// The class an answer names: the class noun (singular or plural, any case) that starts earliest
// in `text`, the longest one at that position ("T-shirt" beats "shirt"). nullopt if none.
std::optional<int> classify_answer(std::string_view text);

}  // namespace vila::data
