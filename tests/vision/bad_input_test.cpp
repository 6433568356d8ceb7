// Bad image files: each a clean error naming the file, never a crash or an exit.
#include <gtest/gtest.h>

#include <string>

#include "vision/image.h"
#include "vision_test_util.h"

namespace vila {
namespace {

using vision_testing::TempDir;

void expect_error(const StatusOr<Image>& r, StatusCode code, const std::string& path) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().to_string();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uint32_t crc32(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : data) {
    crc ^= ch;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

TEST(BadInput, MissingFile) {
  expect_error(load_image("/nonexistent/dir/cat.jpg"), StatusCode::kNotFound,
               "/nonexistent/dir/cat.jpg");
}

TEST(BadInput, ZeroByteFile) {
  TempDir dir;
  dir.write("empty.jpg", "");
  expect_error(load_image(dir.file("empty.jpg")), StatusCode::kDataLoss, dir.file("empty.jpg"));
}

TEST(BadInput, GarbageBytes) {
  TempDir dir;
  dir.write("junk.png", "this is not an image at all, just text");
  expect_error(load_image(dir.file("junk.png")), StatusCode::kUnimplemented, dir.file("junk.png"));
  dir.write("fake.jpg", std::string("\xFF\xD8\xFF\xE0", 4) + std::string(200, '\x42'));
  expect_error(load_image(dir.file("fake.jpg")), StatusCode::kDataLoss, dir.file("fake.jpg"));
  dir.write("fake.png", std::string("\x89PNG\r\n\x1A\n", 8) + std::string(100, '\x11'));
  expect_error(load_image(dir.file("fake.png")), StatusCode::kDataLoss, dir.file("fake.png"));
}

TEST(BadInput, TruncatedJpegAndPng) {
  const std::string photo = vision_testing::photo_path("airplane-from-above");
  const std::string bytes = read_file(photo);
  if (bytes.empty()) GTEST_SKIP() << "npm test images not installed";
  TempDir dir;
  for (size_t keep : {size_t{2}, size_t{100}, size_t{600}, bytes.size() / 2, bytes.size() - 10}) {
    dir.write("cut.jpg", bytes.substr(0, keep));
    SCOPED_TRACE(keep);
    expect_error(load_image(dir.file("cut.jpg")), StatusCode::kDataLoss, dir.file("cut.jpg"));
  }
}

TEST(BadInput, TruncatedPng) {
  // A valid 2x1 RGB PNG (IHDR + IDAT + IEND) cut at every length.
  TempDir dir;
  const std::string ihdr = "IHDR" + be32(2) + be32(1) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string idat = "IDAT" + std::string("\x78\x9c\x63\x60\x00\x03\x00\x00\x07\x00\x01", 11);
  std::string png = std::string("\x89PNG\r\n\x1A\n", 8) + be32(13) + ihdr + be32(crc32(ihdr)) +
                    be32(11) + idat + be32(crc32(idat)) + be32(0) + "IEND" + be32(crc32("IEND"));
  dir.write("ok.png", png);
  auto whole = load_image(dir.file("ok.png"));
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  EXPECT_EQ(whole->width, 2);
  for (size_t keep = 8; keep < png.size() - 12; ++keep) {  // IEND may be missing, as in Pillow
    dir.write("cut.png", png.substr(0, keep));
    SCOPED_TRACE(keep);
    expect_error(load_image(dir.file("cut.png")), StatusCode::kDataLoss, dir.file("cut.png"));
  }
}

TEST(BadInput, HugePngHeaderRefusedBeforeDecoding) {
  TempDir dir;
  std::string ihdr = "IHDR" + be32(100000) + be32(100000) + std::string("\x08\x02\x00\x00\x00", 5);
  std::string png = std::string("\x89PNG\r\n\x1A\n", 8) + be32(13) + ihdr + be32(crc32(ihdr));
  dir.write("bomb.png", png);
  auto r = load_image(dir.file("bomb.png"));
  expect_error(r, StatusCode::kResourceExhausted, dir.file("bomb.png"));
  EXPECT_NE(r.status().message().find("100000x100000"), std::string::npos);
  // A custom limit applies to small images too.
  ImageLoadOptions tight;
  tight.max_pixels = 10;
  const std::string photo = vision_testing::photo_path("nagasaki-boats");
  if (!read_file(photo).empty()) {
    expect_error(load_image(photo, tight), StatusCode::kResourceExhausted, photo);
  }
}

TEST(BadInput, HugeJpegHeaderRefusedBeforeDecoding) {
  // SOI, a baseline SOF0 claiming 60000 x 60000, then nothing.
  std::string jpg("\xFF\xD8", 2);
  jpg += std::string("\xFF\xC0\x00\x11\x08", 5) + std::string("\xEA\x60\xEA\x60", 4) +
         std::string("\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", 10);
  jpg += std::string("\xFF\xDA", 2);
  TempDir dir;
  dir.write("bomb.jpg", jpg);
  // libjpeg needs DHT/SOS to finish the header; whatever it says, it must not decode.
  auto r = load_image(dir.file("bomb.jpg"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir.file("bomb.jpg")), std::string::npos);
}

TEST(BadInput, CropOutsideImage) {
  Image im(4, 4);
  EXPECT_FALSE(crop_image(im, 2, 2, 3, 1).ok());
  EXPECT_FALSE(crop_image(im, -1, 0, 1, 1).ok());
  EXPECT_TRUE(crop_image(im, 0, 0, 4, 4).ok());
}

}  // namespace
}  // namespace vila
