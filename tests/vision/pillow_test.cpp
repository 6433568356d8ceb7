// Decoding and resizing compared with Pillow, pixel by pixel (scripts/pillow_ref.py).
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "vision/image.h"
#include "vision/resize.h"
#include "vision_test_util.h"

namespace vila {
namespace {

using vision_testing::compare;
using vision_testing::PixelDiff;
using vision_testing::TempDir;

#define REQUIRE_PILLOW()                                                            \
  do {                                                                              \
    if (!vision_testing::pillow_available()) GTEST_SKIP() << "python3-pil missing"; \
  } while (0)

std::string job(const std::string& op, const std::string& src, const std::string& out, int w = 0,
                int h = 0) {
  std::string s = "{\"op\":\"" + op + "\",\"src\":\"" + src + "\",\"out\":\"" + out + "\"";
  if (w > 0) s += ",\"w\":" + std::to_string(w) + ",\"h\":" + std::to_string(h);
  return s + "}\n";
}

const std::vector<std::string>& synthetic_kinds() {
  static const std::vector<std::string> kinds = {
      "png_rgb",   "png_rgba",         "png_l",      "png_la",     "png_1bit",
      "png_p8",    "png_p4",           "png_p_trns", "png_p1",     "png_l_trns",
      "png_adam7", "png_i16",          "png_rgb16",  "png_rgba16", "jpeg_rgb",
      "jpeg_444",  "jpeg_progressive", "jpeg_gray",  "jpeg_cmyk",  "jpeg_exif6"};
  return kinds;
}

TEST(PillowDecode, PhotosAndSyntheticFormatsMatchPillowExactly) {
  REQUIRE_PILLOW();
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> cases;  // (image file, Pillow raw)
  std::string make_jobs;
  for (size_t i = 0; i < synthetic_kinds().size(); ++i) {
    const std::string& kind = synthetic_kinds()[i];
    const std::string file = dir.file(kind + (kind.rfind("png", 0) == 0 ? ".png" : ".jpg"));
    make_jobs += "{\"op\":\"make\",\"kind\":\"" + kind + "\",\"seed\":" + std::to_string(i) +
                 ",\"out\":\"" + file + "\"}\n";
    cases.push_back({file, dir.file(kind + ".raw")});
  }
  for (const std::string& name : vision_testing::photo_names()) {
    const std::string path = vision_testing::photo_path(name);
    if (std::ifstream(path).good()) cases.push_back({path, dir.file(name + ".raw")});
  }
  std::string jobs = make_jobs;
  for (const auto& [file, raw] : cases) jobs += job("decode", file, raw);
  dir.write("jobs.jsonl", jobs);
  ASSERT_TRUE(vision_testing::run_pillow(dir.file("jobs.jsonl")));

  for (const auto& [file, raw] : cases) {
    SCOPED_TRACE(file);
    auto ours = load_image(file);
    ASSERT_TRUE(ours.ok()) << ours.status().to_string();
    Image ref;
    ASSERT_TRUE(vision_testing::read_raw(raw, &ref));
    const PixelDiff d = compare(*ours, ref);
    EXPECT_EQ(d.identical, d.total) << "max diff " << d.max_abs;
    EXPECT_EQ(ours->width, ref.width);
    EXPECT_EQ(ours->height, ref.height);
  }
}

TEST(PillowDecode, ExifOrientationOptionMatchesExifTranspose) {
  REQUIRE_PILLOW();
  TempDir dir;
  std::string jobs;
  for (int o = 1; o <= 8; ++o) {
    const std::string file = dir.file("exif" + std::to_string(o) + ".jpg");
    jobs += "{\"op\":\"make\",\"kind\":\"jpeg_exif" + std::to_string(o) +
            "\",\"seed\":" + std::to_string(o) + ",\"out\":\"" + file + "\"}\n";
    jobs += job("exif", file, dir.file("exif" + std::to_string(o) + ".raw"));
    jobs += job("decode", file, dir.file("plain" + std::to_string(o) + ".raw"));
  }
  dir.write("jobs.jsonl", jobs);
  ASSERT_TRUE(vision_testing::run_pillow(dir.file("jobs.jsonl")));
  for (int o = 1; o <= 8; ++o) {
    SCOPED_TRACE("orientation " + std::to_string(o));
    const std::string file = dir.file("exif" + std::to_string(o) + ".jpg");
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(jpeg_exif_orientation(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
              o);
    ImageLoadOptions rotate;
    rotate.apply_exif_orientation = true;
    auto rotated = load_image(file, rotate);
    auto plain = load_image(file);  // default: like VILA, orientation ignored
    ASSERT_TRUE(rotated.ok() && plain.ok());
    Image ref_rot, ref_plain;
    ASSERT_TRUE(vision_testing::read_raw(dir.file("exif" + std::to_string(o) + ".raw"), &ref_rot));
    ASSERT_TRUE(
        vision_testing::read_raw(dir.file("plain" + std::to_string(o) + ".raw"), &ref_plain));
    PixelDiff d = compare(*rotated, ref_rot);
    EXPECT_EQ(d.identical, d.total);
    d = compare(*plain, ref_plain);
    EXPECT_EQ(d.identical, d.total);
  }
}

Image noise_image(int w, int h, uint32_t seed) {
  std::mt19937 rng(seed);
  Image im(w, h);
  for (auto& v : im.pixels) v = static_cast<uint8_t>(rng() & 0xFF);
  return im;
}

// Every target size is resized from each source; counts identical channel values.
TEST(PillowResize, PhotosAndNoiseAtOddSizesMatchPillowExactly) {
  REQUIRE_PILLOW();
  TempDir dir;
  const std::vector<std::pair<int, int>> sizes = {
      {448, 448}, {896, 896},  {1344, 1792}, {37, 1001}, {1000, 7}, {449, 447},  {3, 3},
      {1, 1},     {1344, 896}, {1792, 1344}, {2048, 5},  {13, 448}, {1023, 718}, {1, 900}};
  std::vector<std::pair<std::string, Image>> sources;
  for (const std::string& name : vision_testing::photo_names()) {
    auto im = load_image(vision_testing::photo_path(name));
    if (im.ok()) sources.push_back({name, std::move(*im)});
  }
  sources.push_back({"noise_97x61", noise_image(97, 61, 1)});
  sources.push_back({"noise_5x400", noise_image(5, 400, 2)});
  ASSERT_GE(sources.size(), 2u);
  std::string jobs;
  for (const auto& [name, im] : sources) {
    vision_testing::write_raw(dir.file(name + ".src"), im);
    for (const auto& [w, h] : sizes) {
      jobs +=
          job("resize_raw", dir.file(name + ".src"),
              dir.file(name + "_" + std::to_string(w) + "x" + std::to_string(h) + ".raw"), w, h);
    }
  }
  dir.write("jobs.jsonl", jobs);
  ASSERT_TRUE(vision_testing::run_pillow(dir.file("jobs.jsonl")));

  int64_t total = 0, identical = 0;
  for (const auto& [name, im] : sources) {
    for (const auto& [w, h] : sizes) {
      const std::string tag = name + "_" + std::to_string(w) + "x" + std::to_string(h);
      SCOPED_TRACE(tag);
      auto ours = resize_bicubic(im, w, h);
      ASSERT_TRUE(ours.ok()) << ours.status().to_string();
      Image ref;
      ASSERT_TRUE(vision_testing::read_raw(dir.file(tag + ".raw"), &ref));
      const PixelDiff d = compare(*ours, ref);
      EXPECT_EQ(d.identical, d.total) << "max diff " << d.max_abs;
      EXPECT_LE(d.max_abs, 1);
      total += d.total;
      identical += d.identical;
    }
  }
  std::printf("[ resize  ] %lld / %lld channel values identical to Pillow\n",
              static_cast<long long>(identical), static_cast<long long>(total));
}

TEST(PillowResize, EndToEndFromJpegFile) {
  REQUIRE_PILLOW();
  TempDir dir;
  const std::string path = vision_testing::photo_path("nagasaki-boats");
  if (!std::ifstream(path).good()) GTEST_SKIP() << "npm test images not installed";
  dir.write("jobs.jsonl", job("resize", path, dir.file("r.raw"), 1344, 1344));
  ASSERT_TRUE(vision_testing::run_pillow(dir.file("jobs.jsonl")));
  auto im = load_image(path);
  ASSERT_TRUE(im.ok());
  auto ours = resize_bicubic(*im, 1344, 1344);
  ASSERT_TRUE(ours.ok());
  Image ref;
  ASSERT_TRUE(vision_testing::read_raw(dir.file("r.raw"), &ref));
  const PixelDiff d = compare(*ours, ref);
  EXPECT_EQ(d.identical, d.total);
}

TEST(Resize, RejectsBadSizesAndCopiesSameSize) {
  Image im = noise_image(4, 3, 7);
  EXPECT_FALSE(resize_bicubic(im, 0, 3).ok());
  EXPECT_FALSE(resize_bicubic(im, 4, -1).ok());
  EXPECT_FALSE(resize_bicubic(Image(), 4, 4).ok());
  auto same = resize_bicubic(im, 4, 3);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->pixels, im.pixels);
}

}  // namespace
}  // namespace vila
