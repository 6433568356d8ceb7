// Tiling (VILA mm_utils.py rules), token counts and config loading.
#include "vision/tiling.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "vision/preprocess.h"
#include "vision/resize.h"
#include "vision_test_util.h"

namespace vila {
namespace {

using vision_testing::TempDir;

PreprocessConfig nvila_8b() {
  PreprocessConfig c;
  c.image_aspect_ratio = "dynamic_s2";
  c.s2_scales = {448, 896, 1344};
  c.max_tiles = 12;
  c.projector_downsample = 2;
  return c;
}

PreprocessConfig nvila_lite() {
  PreprocessConfig c;
  c.image_aspect_ratio = "dynamic";
  c.projector_downsample = 3;
  return c;
}

Image gradient(int w, int h) {
  Image im(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        im.row(y)[3 * x + c] = static_cast<uint8_t>((x * 7 + y * 3 + c * 50) & 0xFF);
  return im;
}

TEST(Tiling, CandidatesSortedByProduct) {
  const auto grids = candidate_grids(9, 12);
  ASSERT_FALSE(grids.empty());
  for (size_t i = 1; i < grids.size(); ++i) {
    EXPECT_LE(grids[i - 1].cols * grids[i - 1].rows, grids[i].cols * grids[i].rows);
  }
  for (const auto& g : grids) {
    EXPECT_GE(g.cols * g.rows, 9);
    EXPECT_LE(g.cols * g.rows, 12);
  }
  EXPECT_TRUE(candidate_grids(13, 12).empty());
}

TEST(Tiling, TieRule) {
  EXPECT_EQ(dynamic_grid(960, 960, 1, 12, 448), (TileGrid{3, 3}));  // Lite: later tie wins
  EXPECT_EQ(dynamic_grid(420, 400, 1, 12, 448), (TileGrid{1, 1}));  // too small to move up
  EXPECT_EQ(dynamic_grid(448, 448, 1, 12, 448), (TileGrid{1, 1}));  // 200704 !> 200704
  EXPECT_EQ(dynamic_grid(449, 448, 1, 12, 448), (TileGrid{1, 1}));
  EXPECT_EQ(dynamic_grid(634, 634, 1, 12, 448), (TileGrid{2, 2}));  // 401956 > 401408
  EXPECT_EQ(dynamic_grid(1920, 1080, 9, 12, 448), (TileGrid{4, 3}));
  // No candidates (min > max): VILA's default (1, 1).
  EXPECT_EQ(dynamic_grid(1920, 1080, 13, 12, 448), (TileGrid{1, 1}));
}

TEST(Tiling, TokenCounts) {
  const PreprocessConfig s2 = nvila_8b();
  EXPECT_EQ(tokens_per_tile(s2), 256);
  EXPECT_EQ(image_token_count(s2, 1920, 1080), 3072);
  EXPECT_EQ(image_token_count(s2, 1000, 1000), 2304);
  EXPECT_EQ(image_token_count(s2, 10, 10), 2304);  // tiny images still use >= 9 tiles
  EXPECT_EQ(image_token_count(s2, 1920, 1080, /*single_image=*/false), 256);
  const PreprocessConfig lite = nvila_lite();
  EXPECT_EQ(tokens_per_tile(lite), 121);
  EXPECT_EQ(image_token_count(lite, 420, 400), 121);            // 1 tile, no thumbnail
  EXPECT_EQ(image_token_count(lite, 960, 960), 121 * (9 + 1));  // 3x3 + thumbnail
  EXPECT_EQ(image_token_count(lite, 1920, 1080), 121 * (4 * 2 + 1));
  PreprocessConfig vila15;
  vila15.image_size = 384;
  EXPECT_EQ(image_token_count(vila15, 1920, 1080), 196);  // 27 / 2 -> 14^2
}

TEST(Tiling, DynamicS2TilesAreCropsOfPillowResizes) {
  const Image im = gradient(1920, 1080);
  auto t = dynamic_s2_preprocess(im, {448, 896, 1344}, 12, 448);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(t->rows, 3);
  EXPECT_EQ(t->cols, 4);
  ASSERT_EQ(t->tiles.size(), 1u + 4u + 12u);
  auto r448 = resize_bicubic(im, 448, 448);
  auto r896 = resize_bicubic(im, 896, 896);
  auto rlast = resize_bicubic(im, 4 * 448, 3 * 448);
  ASSERT_TRUE(r448.ok() && r896.ok() && rlast.ok());
  EXPECT_EQ(t->tiles[0].pixels, r448->pixels);
  for (int i = 0; i < 4; ++i) {
    auto c = crop_image(*r896, (i % 2) * 448, (i / 2) * 448, 448, 448);
    EXPECT_EQ(t->tiles[1 + i].pixels, c->pixels) << i;
  }
  for (int i = 0; i < 12; ++i) {
    auto c = crop_image(*rlast, (i % 4) * 448, (i / 4) * 448, 448, 448);
    EXPECT_EQ(t->tiles[5 + i].pixels, c->pixels) << i;
  }
}

TEST(Tiling, DynamicAppendsThumbnailLast) {
  const Image im = gradient(960, 960);
  auto tiles = dynamic_preprocess(im, 1, 12, 448, true);
  ASSERT_TRUE(tiles.ok());
  ASSERT_EQ(tiles->size(), 10u);
  auto thumb = resize_bicubic(im, 448, 448);
  EXPECT_EQ(tiles->back().pixels, thumb->pixels);
  auto one = dynamic_preprocess(gradient(420, 400), 1, 12, 448, true);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
}

TEST(Preprocess, NormalisesToChwLikeSiglipProcessor) {
  PreprocessConfig c = nvila_8b();
  const Image im = gradient(700, 500);
  auto p = preprocess_image(im, c);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->num_tiles, 1 + 4 + 12);  // 700/500 = 1.4 -> 4x3 (1.33)
  EXPECT_EQ(p->view().shape, (Shape{p->num_tiles, 3, 448, 448}));
  auto t = dynamic_s2_preprocess(im, c.s2_scales, 12, 448);
  const uint8_t v = t->tiles[0].row(10)[3 * 20 + 1];  // tile 0, y 10, x 20, channel G
  const float expect = (static_cast<float>(v * (1.0 / 255.0)) - 0.5f) / 0.5f;
  EXPECT_EQ(p->data[1 * 448 * 448 + 10 * 448 + 20], expect);
  auto multi = preprocess_image(im, c, /*single_image=*/false);
  ASSERT_TRUE(multi.ok());
  EXPECT_EQ(multi->num_tiles, 1);
}

TEST(Preprocess, LoadsConfigFromModelDir) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("vision_tower"));
  dir.write("config.json", R"({"image_aspect_ratio": "dynamic_s2", "s2_scales": "448,896,1344",
    "mm_projector_cfg": {"mm_projector_type": "mlp_downsample"},
    "vision_tower_cfg": {"patch_size": 14}})");
  dir.write("vision_tower/preprocessor_config.json", R"({"image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5], "rescale_factor": 0.00392156862745098,
    "size": {"height": 448, "width": 448}, "resample": 3})");
  auto c = load_preprocess_config(dir.file(""));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->image_aspect_ratio, "dynamic_s2");
  EXPECT_EQ(c->s2_scales, (std::vector<int>{448, 896, 1344}));
  EXPECT_EQ(c->max_tiles, 12);
  EXPECT_EQ(c->min_tiles, 1);
  EXPECT_EQ(c->image_size, 448);
  EXPECT_EQ(c->projector_downsample, 2);
  EXPECT_EQ(image_token_count(*c, 1920, 1080), 3072);

  dir.write("config.json", R"({"image_aspect_ratio": "dynamic",
    "mm_projector_cfg": {"mm_projector_type": "mlp_downsample_3x3_fix"}})");
  c = load_preprocess_config(dir.file(""));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(tokens_per_tile(*c), 121);

  dir.write("config.json", R"({"image_aspect_ratio": "dynamic_s2"})");
  c = load_preprocess_config(dir.file(""));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("config.json"), std::string::npos);

  dir.write("config.json", R"({"image_aspect_ratio": "resize"})");
  dir.write("vision_tower/preprocessor_config.json", R"({"image_mean": [0.5, 0.5]})");
  c = load_preprocess_config(dir.file(""));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("preprocessor_config.json"), std::string::npos);
}

TEST(Tiling, ElevenToOneStripUsesElevenTiles) {
  const TileGrid g = dynamic_s2_grid(704, 64, {448, 896, 1344}, 12, 448);
  EXPECT_EQ(g.cols * g.rows, 11);
  EXPECT_EQ(g.cols, 11);
}

}  // namespace
}  // namespace vila
