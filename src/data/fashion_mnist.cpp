#include "data/fashion_mnist.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/mapped_file.h"
#include "data/idx.h"

namespace vila::data {

namespace {

struct ClassInfo {
  const char* name;
  const char* noun;
  const char* plural;
  const char* article;
  FashionCategory category;
  // Lower-case word stems classify_answer accepts for this class ("s" / "es" may follow).
  std::array<const char*, 3> stems;
};

constexpr std::array<ClassInfo, kFashionClasses> kClasses = {{
    {"T-shirt/top",
     "T-shirt/top",
     "T-shirts/tops",
     "a",
     FashionCategory::kTop,
     {"t-shirt", "tshirt", "top"}},
    {"Trouser", "trouser", "trousers", "a", FashionCategory::kBottom, {"trouser", nullptr}},
    {"Pullover", "pullover", "pullovers", "a", FashionCategory::kTop, {"pullover", nullptr}},
    {"Dress", "dress", "dresses", "a", FashionCategory::kDress, {"dress", nullptr}},
    {"Coat", "coat", "coats", "a", FashionCategory::kTop, {"coat", nullptr}},
    {"Sandal", "sandal", "sandals", "a", FashionCategory::kFootwear, {"sandal", nullptr}},
    {"Shirt", "shirt", "shirts", "a", FashionCategory::kTop, {"shirt", nullptr}},
    {"Sneaker", "sneaker", "sneakers", "a", FashionCategory::kFootwear, {"sneaker", nullptr}},
    {"Bag", "bag", "bags", "a", FashionCategory::kBag, {"bag", nullptr}},
    {"Ankle boot",
     "ankle boot",
     "ankle boots",
     "an",
     FashionCategory::kFootwear,
     {"ankle boot", "boot"}},
}};

constexpr std::array<const char*, kFashionCategories> kCategoryNames = {"top", "bottom", "dress",
                                                                        "footwear", "bag"};

const ClassInfo& info(int label) {
  return kClasses[static_cast<size_t>(std::clamp(label, 0, kFashionClasses - 1))];
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Length of `stem` (+ optional "s" / "es") as a whole word at text[pos], or 0.
size_t word_match(const std::string& text, size_t pos, std::string_view stem) {
  if (pos > 0 && is_alnum(text[pos - 1])) return 0;
  if (text.compare(pos, stem.size(), stem) != 0) return 0;
  size_t end = pos + stem.size();
  if (text.compare(end, 2, "es") == 0 && (end + 2 >= text.size() || !is_alnum(text[end + 2]))) {
    return stem.size() + 2;
  }
  if (end < text.size() && text[end] == 's') ++end;
  if (end < text.size() && is_alnum(text[end])) return 0;
  return end - pos;
}

Status check_dims(const IdxArray& a, size_t ndims, const std::string& path) {
  if (a.dims.size() != ndims) {
    return data_loss(path + ": expected " + std::to_string(ndims) + " IDX dimensions, found " +
                     std::to_string(a.dims.size()));
  }
  return ok_status();
}

}  // namespace

const char* fashion_class_name(int label) { return info(label).name; }
const char* fashion_noun(int label) { return info(label).noun; }
const char* fashion_plural(int label) { return info(label).plural; }
const char* fashion_article(int label) { return info(label).article; }
FashionCategory fashion_category(int label) { return info(label).category; }
const char* fashion_category_name(FashionCategory category) {
  return kCategoryNames[static_cast<size_t>(category)];
}

std::array<std::vector<int64_t>, kFashionClasses> FashionSplit::indices_by_class() const {
  std::array<std::vector<int64_t>, kFashionClasses> out;
  for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(label(i))].push_back(i);
  return out;
}

StatusOr<FashionSplit> load_fashion_split(const std::string& dir, const std::string& prefix) {
  const std::string images_path = path_join(dir, prefix + "-images-idx3-ubyte.gz");
  const std::string labels_path = path_join(dir, prefix + "-labels-idx1-ubyte.gz");
  VILA_ASSIGN_OR_RETURN(IdxArray images, read_idx(images_path));
  VILA_ASSIGN_OR_RETURN(IdxArray labels, read_idx(labels_path));
  VILA_RETURN_IF_ERROR(check_dims(images, 3, images_path));
  VILA_RETURN_IF_ERROR(check_dims(labels, 1, labels_path));
  if (images.dims[1] != kFashionSide || images.dims[2] != kFashionSide) {
    return data_loss(images_path + ": images are " + std::to_string(images.dims[1]) + " x " +
                     std::to_string(images.dims[2]) + ", expected 28 x 28");
  }
  if (images.dims[0] != labels.dims[0]) {
    return data_loss(images_path + " has " + std::to_string(images.dims[0]) + " images but " +
                     labels_path + " has " + std::to_string(labels.dims[0]) + " labels");
  }
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= kFashionClasses) {
      return data_loss(labels_path + ": label " + std::to_string(labels.data[i]) + " at index " +
                       std::to_string(i) + " is not a class (0..9)");
    }
  }
  FashionSplit split;
  split.name = prefix;
  split.count = images.dims[0];
  split.pixels = std::move(images.data);
  split.labels = std::move(labels.data);
  return split;
}

StatusOr<FashionMnist> load_fashion_mnist(const std::string& dir) {
  FashionMnist out;
  VILA_ASSIGN_OR_RETURN(out.train, load_fashion_split(dir, "train"));
  VILA_ASSIGN_OR_RETURN(out.test, load_fashion_split(dir, "t10k"));
  return out;
}

StatusOr<Image> grey_to_rgb_tile(const uint8_t* grey, int rows, int cols, int size,
                                 TileFilter filter) {
  if (size <= 0 || rows <= 0 || cols <= 0 || grey == nullptr) {
    return invalid_argument("grey_to_rgb_tile: size " + std::to_string(size) + " and image " +
                            std::to_string(rows) + " x " + std::to_string(cols) +
                            " must be positive");
  }
  Image out(size, size);
  // Source coordinate of output pixel x: u = (x + 0.5) * in / out - 0.5.
  auto source = [size](int x, int in) { return (x + 0.5) * in / size - 0.5; };
  for (int y = 0; y < size; ++y) {
    const double v = source(y, rows);
    uint8_t* dst = out.row(y);
    for (int x = 0; x < size; ++x) {
      const double u = source(x, cols);
      uint8_t value;
      if (filter == TileFilter::kNearest) {
        const int sx = std::clamp(static_cast<int>(std::floor(u + 0.5)), 0, cols - 1);
        const int sy = std::clamp(static_cast<int>(std::floor(v + 0.5)), 0, rows - 1);
        value = grey[static_cast<size_t>(sy) * cols + sx];
      } else {
        const double uc = std::clamp(u, 0.0, cols - 1.0), vc = std::clamp(v, 0.0, rows - 1.0);
        const int x0 = static_cast<int>(uc), y0 = static_cast<int>(vc);
        const int x1 = std::min(x0 + 1, cols - 1), y1 = std::min(y0 + 1, rows - 1);
        const double fx = uc - x0, fy = vc - y0;
        auto at = [&](int yy, int xx) {
          return static_cast<double>(grey[static_cast<size_t>(yy) * cols + xx]);
        };
        const double top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx;
        const double bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx;
        value = static_cast<uint8_t>(
            std::clamp(std::floor(top * (1 - fy) + bottom * fy + 0.5), 0.0, 255.0));
      }
      uint8_t* rgb = dst + static_cast<size_t>(x) * 3;  // (R, G, B)
      rgb[0] = rgb[1] = rgb[2] = value;
    }
  }
  return out;
}

StatusOr<Image> fashion_tile(const FashionSplit& split, int64_t index, int size,
                             TileFilter filter) {
  if (index < 0 || index >= split.count) {
    return out_of_range("fashion_tile: index " + std::to_string(index) + " is outside " +
                        split.name + " (" + std::to_string(split.count) + " images)");
  }
  return grey_to_rgb_tile(split.image(index), kFashionSide, kFashionSide, size, filter);
}

std::optional<int> classify_answer(std::string_view text) {
  std::string lowered(text);
  for (char& c : lowered) c = lower(c);
  size_t best_pos = std::string::npos, best_len = 0;
  int best = -1;
  for (int label = 0; label < kFashionClasses; ++label) {
    for (const char* stem : kClasses[static_cast<size_t>(label)].stems) {
      if (stem == nullptr) continue;
      for (size_t pos = lowered.find(stem); pos != std::string::npos;
           pos = lowered.find(stem, pos + 1)) {
        const size_t len = word_match(lowered, pos, stem);
        if (len == 0) continue;
        if (pos < best_pos || (pos == best_pos && len > best_len)) {
          best_pos = pos;
          best_len = len;
          best = label;
        }
        break;  // later occurrences of this stem start later
      }
    }
  }
  if (best < 0) return std::nullopt;
  return best;
}

}  // namespace vila::data
