// IDX reading (real Fashion-MNIST files, truncated / corrupt copies), the split loader, tiles and
// answer classification.
#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <iterator>

#include "../common/temp_dir.h"
#include "data/gzip.h"
#include "data/idx.h"
#include "data_test_util.h"

namespace vila::data {
namespace {

using testing::fashion;

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

TEST(Idx, RealFilesHaveTheDocumentedCounts) {
  VILA_REQUIRE_FASHION();
  const FashionMnist& d = *fashion();
  EXPECT_EQ(d.train.count, kFashionTrainCount);
  EXPECT_EQ(d.test.count, kFashionTestCount);
  EXPECT_EQ(d.train.pixels.size(), static_cast<size_t>(kFashionTrainCount) * 28 * 28);
  EXPECT_EQ(d.test.labels.size(), static_cast<size_t>(kFashionTestCount));
  // Both splits are balanced: 6,000 and 1,000 images per class.
  const auto train = d.train.indices_by_class();
  const auto test = d.test.indices_by_class();
  for (int c = 0; c < kFashionClasses; ++c) {
    EXPECT_EQ(train[c].size(), 6000u) << fashion_class_name(c);
    EXPECT_EQ(test[c].size(), 1000u) << fashion_class_name(c);
  }
  // Known first labels of the files: train starts with an ankle boot, t10k with an ankle boot and
  // a pullover.
  EXPECT_EQ(d.train.label(0), 9);
  EXPECT_EQ(d.test.label(0), 9);
  EXPECT_EQ(d.test.label(1), 2);
}

TEST(Idx, HeaderDims) {
  VILA_REQUIRE_FASHION();
  auto a = read_idx(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_EQ(a->dims.size(), 1u);
  EXPECT_EQ(a->dims[0], 10000u);
}

TEST(Idx, TruncatedCopyFailsNamingTheFile) {
  VILA_REQUIRE_FASHION();
  vila::testing::TempDir tmp;
  const std::string bytes =
      read_bytes(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_GT(bytes.size(), 100u);
  tmp.write("t10k-labels-idx1-ubyte.gz", bytes.substr(0, bytes.size() / 2));
  const std::string path = tmp.file("t10k-labels-idx1-ubyte.gz");
  auto a = read_idx(path);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(a.status().message().find(path), std::string::npos) << a.status().message();

  // A split with a truncated file is refused too, naming it.
  const std::string images =
      read_bytes(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz");
  tmp.write("t10k-images-idx3-ubyte.gz", images);
  auto split = load_fashion_split(tmp.path(), "t10k");
  ASSERT_FALSE(split.ok());
  EXPECT_NE(split.status().message().find("t10k-labels"), std::string::npos);
}

TEST(Idx, CorruptAndMalformedContents) {
  vila::testing::TempDir tmp;
  // Plain (uncompressed) files are read through zlib transparently.
  const std::string good = std::string("\0\0\x08\x01\0\0\0\x03", 8) + "abc";
  tmp.write("good", good);
  auto ok = read_idx(tmp.file("good"));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->dims, std::vector<uint32_t>{3});
  EXPECT_EQ(std::string(ok->data.begin(), ok->data.end()), "abc");

  struct Case {
    std::string bytes;
    StatusCode code;
    const char* needle;
  };
  const std::array<Case, 6> cases = {{
      {std::string("\x01\0\x08\x01\0\0\0\x03", 8) + "abc", StatusCode::kDataLoss, "magic"},
      {std::string("\0\0\x0D\x01\0\0\0\x03", 8) + "abc", StatusCode::kUnimplemented, "0x0d"},
      {std::string("\0\0\x08\x00", 4), StatusCode::kDataLoss, "dimension count"},
      {std::string("\0\0\x08\x02\0\0", 6), StatusCode::kDataLoss, "truncated IDX header"},
      {std::string("\0\0\x08\x01\0\0\0\x05", 8) + "abc", StatusCode::kDataLoss,
       "truncated IDX data"},
      {std::string("\0\0\x08\x01\0\0\0\x02", 8) + "abc", StatusCode::kDataLoss, "unexpected bytes"},
  }};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string name = "case" + std::to_string(i);
    tmp.write(name, cases[i].bytes);
    auto r = read_idx(tmp.file(name));
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.status().code(), cases[i].code) << r.status().to_string();
    EXPECT_NE(r.status().message().find(cases[i].needle), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find(tmp.file(name)), std::string::npos);
  }
  auto missing = read_idx(tmp.file("nope.gz"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(Gzip, LimitsAndPrefix) {
  VILA_REQUIRE_FASHION();
  const std::string path = std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz";
  auto whole = read_gzip_file(path, 10008);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_EQ(whole->size(), 10008u);  // 8 header bytes + 10,000 labels
  EXPECT_EQ(read_gzip_file(path, 10007).status().code(), StatusCode::kResourceExhausted);
  auto prefix = read_gzip_prefix(path, 8);
  ASSERT_TRUE(prefix.ok());
  EXPECT_EQ(*prefix, std::string("\0\0\x08\x01\0\0\x27\x10", 8));
}

TEST(FashionMnist, ClassNamesAndCategories) {
  EXPECT_STREQ(fashion_class_name(0), "T-shirt/top");
  EXPECT_STREQ(fashion_class_name(9), "Ankle boot");
  EXPECT_STREQ(fashion_article(9), "an");
  EXPECT_STREQ(fashion_plural(3), "dresses");
  EXPECT_EQ(fashion_category(7), FashionCategory::kFootwear);
  EXPECT_STREQ(fashion_category_name(fashion_category(1)), "bottom");
}

TEST(FashionMnist, ClassifyAnswer) {
  EXPECT_EQ(classify_answer("A trouser."), 1);
  EXPECT_EQ(classify_answer("This is an ankle boot."), 9);
  EXPECT_EQ(classify_answer("boots"), 9);
  EXPECT_EQ(classify_answer("It is a T-shirt/top."), 0);  // not "shirt"
  EXPECT_EQ(classify_answer("a shirt, not a t-shirt"), 6);
  EXPECT_EQ(classify_answer("Dresses!"), 3);
  EXPECT_EQ(classify_answer("SNEAKERS"), 7);
  EXPECT_EQ(classify_answer("baggage and stops"), std::nullopt);  // whole words only
  EXPECT_EQ(classify_answer(""), std::nullopt);
  for (int c = 0; c < kFashionClasses; ++c) {
    EXPECT_EQ(classify_answer(fashion_class_name(c)), c);
    EXPECT_EQ(classify_answer(fashion_plural(c)), c);
  }
}

TEST(FashionMnist, Tiles) {
  // A 2 x 2 image: nearest replication and bilinear interpolation at pixel centres.
  const uint8_t grey[4] = {0, 100, 200, 255};
  auto nearest = grey_to_rgb_tile(grey, 2, 2, 4, TileFilter::kNearest);
  ASSERT_TRUE(nearest.ok());
  EXPECT_EQ(nearest->width, 4);
  const uint8_t expected_nearest[4][4] = {
      {0, 0, 100, 100}, {0, 0, 100, 100}, {200, 200, 255, 255}, {200, 200, 255, 255}};
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      for (int c = 0; c < 3; ++c) EXPECT_EQ(nearest->row(y)[3 * x + c], expected_nearest[y][x]);
    }
  }
  auto bilinear = grey_to_rgb_tile(grey, 2, 2, 4, TileFilter::kBilinear);
  ASSERT_TRUE(bilinear.ok());
  // Output x = 1 reads u = 0.25: 0.75 * 0 + 0.25 * 100 = 25 on the first row (y = 0 clamps to 0).
  EXPECT_EQ(bilinear->row(0)[3 * 0], 0);
  EXPECT_EQ(bilinear->row(0)[3 * 1], 25);
  EXPECT_EQ(bilinear->row(0)[3 * 2], 75);
  EXPECT_EQ(bilinear->row(0)[3 * 3], 100);
  // Centre pixel (1, 1): u = v = 0.25 -> 0.75*(0.75*0+0.25*100) + 0.25*(0.75*200+0.25*255).
  EXPECT_EQ(bilinear->row(1)[3 * 1], 72);  // 18.75 + 53.4375 = 72.19
  EXPECT_EQ(bilinear->row(3)[3 * 3], 255);

  EXPECT_FALSE(grey_to_rgb_tile(grey, 2, 2, 0, TileFilter::kNearest).ok());
  VILA_REQUIRE_FASHION();
  auto tile = fashion_tile(fashion()->test, 0, 56, TileFilter::kNearest);
  ASSERT_TRUE(tile.ok());
  EXPECT_EQ(tile->pixels.size(), 56u * 56 * 3);
  // Integer factor: tile pixel (2x+1, 2y+1) is source pixel (x, y).
  const uint8_t* src = fashion()->test.image(0);
  for (int y = 0; y < 28; ++y) {
    for (int x = 0; x < 28; ++x) ASSERT_EQ(tile->row(2 * y + 1)[3 * (2 * x + 1)], src[y * 28 + x]);
  }
  EXPECT_EQ(fashion_tile(fashion()->test, 10000, 56, TileFilter::kNearest).status().code(),
            StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace vila::data
