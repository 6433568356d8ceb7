// End-to-end preprocessing (decode, tile, resize, normalise) against a Python rendering of VILA's
// mm_utils.py tiling + SiglipImageProcessor arithmetic on Pillow (scripts/pillow_ref.py).
#include "vision/preprocess.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "vision_test_util.h"

namespace vila {
namespace {

using vision_testing::TempDir;

struct Case {
  std::string photo;
  PreprocessConfig config;
};

std::string floats(const std::array<float, 3>& v) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "[%.9g, %.9g, %.9g]", v[0], v[1], v[2]);
  return buf;
}

std::string tiles_job(const Case& c, const std::string& out) {
  const PreprocessConfig& p = c.config;
  std::string scales = "[";
  for (size_t i = 0; i < p.s2_scales.size(); ++i) {
    if (i > 0) scales += ",";
    scales += std::to_string(p.s2_scales[i]);
  }
  scales += "]";
  char rescale[64];
  std::snprintf(rescale, sizeof(rescale), "%.17g", p.rescale_factor);
  return "{\"op\":\"vila_tiles\",\"src\":\"" + vision_testing::photo_path(c.photo) +
         "\",\"out\":\"" + out + "\",\"mode\":\"" + p.image_aspect_ratio +
         "\",\"scales\":" + scales + ",\"max_tiles\":" + std::to_string(p.max_tiles) +
         ",\"min_tiles\":" + std::to_string(p.min_tiles) +
         ",\"size\":" + std::to_string(p.image_size) + ",\"mean\":" + floats(p.image_mean) +
         ",\"std\":" + floats(p.image_std) + ",\"rescale\":" + rescale + "}\n";
}

TEST(PillowPreprocess, TilesAndFloatsMatchVilaReference) {
  if (!vision_testing::pillow_available()) GTEST_SKIP() << "python3-pil missing";
  if (!std::ifstream(vision_testing::photo_path("nagasaki-boats")).good()) {
    GTEST_SKIP() << "npm test images not installed";
  }
  PreprocessConfig s2;
  s2.image_aspect_ratio = "dynamic_s2";
  s2.s2_scales = {448, 896, 1344};
  PreprocessConfig lite;
  lite.image_aspect_ratio = "dynamic";
  PreprocessConfig vila15;  // "resize", 384, CLIP-like statistics to exercise normalisation
  vila15.image_size = 384;
  vila15.image_mean = {0.48145466f, 0.4578275f, 0.40821073f};
  vila15.image_std = {0.26862954f, 0.26130258f, 0.27577711f};
  std::vector<Case> cases;
  for (const std::string& photo : vision_testing::photo_names()) {
    cases.push_back({photo, s2});
    cases.push_back({photo, lite});
  }
  cases.push_back({"allium-oreophilum", vila15});
  // An 11:1 strip: dynamic_s2 picks an 11x1 grid, so 9, 10 (fixtures), 11 and 12 tiles are all
  // covered; Lite picks 11 tiles + thumbnail.
  const std::string wide =
      std::string(VILA_SOURCE_DIR) + "/tests/fixtures/vision/images/wide_704x64.jpg";
  cases.push_back({wide, s2});
  cases.push_back({wide, lite});

  TempDir dir;
  std::string jobs;
  for (size_t i = 0; i < cases.size(); ++i) {
    jobs += tiles_job(cases[i], dir.file("case" + std::to_string(i) + ".f32"));
  }
  dir.write("jobs.jsonl", jobs);
  ASSERT_TRUE(vision_testing::run_pillow(dir.file("jobs.jsonl")));

  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.photo + " " + c.config.image_aspect_ratio);
    std::ifstream in(dir.file("case" + std::to_string(i) + ".f32"), std::ios::binary);
    int32_t header[3];
    ASSERT_TRUE(in.read(reinterpret_cast<char*>(header), sizeof(header)));
    auto image = load_image(vision_testing::photo_path(c.photo));
    ASSERT_TRUE(image.ok());
    auto ours = preprocess_image(*image, c.config);
    ASSERT_TRUE(ours.ok()) << ours.status().to_string();
    ASSERT_EQ(ours->num_tiles, header[0]);
    EXPECT_EQ(ours->block_rows, header[1]);
    EXPECT_EQ(ours->block_cols, header[2]);
    std::vector<float> ref(ours->data.size());
    ASSERT_TRUE(in.read(reinterpret_cast<char*>(ref.data()),
                        static_cast<std::streamsize>(ref.size() * sizeof(float))));
    size_t differing = 0;
    for (size_t k = 0; k < ref.size(); ++k) {
      if (std::memcmp(&ref[k], &ours->data[k], sizeof(float)) != 0) ++differing;
    }
    EXPECT_EQ(differing, 0u) << "of " << ref.size() << " floats";
    EXPECT_EQ(
        image_token_count(c.config, image->width, image->height),
        tokens_per_tile(c.config) *
            (c.config.image_aspect_ratio == "dynamic_s2"
                 ? header[1] * header[2]
                 : (header[0] > 1 && c.config.image_aspect_ratio == "dynamic" ? header[0] : 1)));
  }
}

}  // namespace
}  // namespace vila
