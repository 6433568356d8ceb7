// Vision golden tests: tiny NVILA (dynamic_s2 + 2x2), NVILA-Lite (dynamic + 3x3) and VILA1.5
// (resize, 27x27 padded to 28x28) checkpoints with real photographs; references from a PyTorch
// pipeline written from VILA's released code (scripts/make_golden_vision.py, GPU machine).
// Checked on CPU: prompt ids, tiles bit-exact (sha256 of the uint8 tiles), projected features and
// the logits of the last positions within 1e-4, greedy continuations identical.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/golden_util.h"
#include "format/safetensors.h"
#include "model/vila_model.h"
#include "runtime/kv_cache.h"
#include "vision/resize.h"
#include "vision/tiling.h"

namespace vila {
namespace {

namespace fs = std::filesystem;
constexpr double kTolerance = 1e-4;
const fs::path kRoot = fs::path(VILA_FIXTURES_DIR) / "vision";

std::string sha256_hex(const std::vector<uint8_t>& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes.data(), bytes.size(), digest);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

class VisionGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = (kRoot / GetParam()).string();
    std::ifstream in(dir_ + "/reference.json");
    reference_ = nlohmann::json::parse(in);
    auto model = VilaModel::load(dir_);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    model_ = std::move(*model);
    auto tensors = Checkpoint::open_file(dir_ + "/reference_vision.safetensors");
    ASSERT_TRUE(tensors.ok()) << tensors.status().to_string();
    tensors_ = std::move(*tensors);
  }

  std::vector<std::string> image_paths(const nlohmann::json& c) const {
    std::vector<std::string> paths;
    for (const auto& p : c["images"]) paths.push_back((kRoot / p.get<std::string>()).string());
    return paths;
  }

  const float* tensor(const std::string& name, const Shape& shape) {
    auto entry = tensors_->get(name, shape);
    EXPECT_TRUE(entry.ok()) << entry.status().to_string();
    return entry.ok() ? reinterpret_cast<const float*>((*entry)->data) : nullptr;
  }

  std::string dir_;
  nlohmann::json reference_;
  std::unique_ptr<VilaModel> model_;
  std::unique_ptr<Checkpoint> tensors_;
};

// The uint8 tiles of one image exactly as VILA cuts them, hashed.
std::vector<std::string> tile_hashes(const Image& image, const nlohmann::json& media,
                                     const nlohmann::json& ref) {
  std::vector<Image> tiles;
  const std::string kind = media["kind"];
  const int size = ref["vision_image_size"];
  if (kind == "dynamic_s2") {
    std::vector<int> scales = ref["s2_scales"].get<std::vector<int>>();
    auto s2 = dynamic_s2_preprocess(image, scales, ref["max_tiles"], size);
    EXPECT_TRUE(s2.ok()) << s2.status().to_string();
    if (s2.ok()) tiles = s2->tiles;
  } else if (kind == "dynamic") {
    auto d = dynamic_preprocess(image, ref["min_tiles"], ref["max_tiles"], size, true);
    EXPECT_TRUE(d.ok()) << d.status().to_string();
    if (d.ok()) tiles = *d;
  } else {  // single resize (resize mode, or one image of several)
    auto r = resize_bicubic(image, size, size);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (r.ok()) tiles.push_back(*r);
  }
  std::vector<std::string> hashes;
  for (const Image& t : tiles) hashes.push_back(sha256_hex(t.pixels));
  return hashes;
}

TEST_P(VisionGolden, TilesAreBitExact) {
  for (const auto& c : reference_["cases"]) {
    const auto paths = image_paths(c);
    for (size_t i = 0; i < paths.size(); ++i) {
      auto image = load_image(paths[i]);
      ASSERT_TRUE(image.ok()) << image.status().to_string();
      const auto& media = c["media"][i];
      EXPECT_EQ(tile_hashes(*image, media, reference_),
                media["tile_sha256"].get<std::vector<std::string>>())
          << c["name"] << " image " << i;
    }
  }
}

TEST_P(VisionGolden, PromptFeaturesLogitsAndGreedyMatch) {
  const int64_t vocab = model_->llm().config().vocab_size;
  const int64_t hidden = model_->llm().config().hidden;
  for (const auto& c : reference_["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto prompt = model_->build_prompt(c["prompt"], image_paths(c), false);
    ASSERT_TRUE(prompt.ok()) << prompt.status().to_string();
    EXPECT_EQ(prompt->message, c["message_text"].get<std::string>());
    EXPECT_EQ(prompt->input.ids, c["input_ids"].get<std::vector<int32_t>>());
    const int64_t n = static_cast<int64_t>(prompt->input.embeds.size()) / hidden;
    ASSERT_EQ(n, c["expanded_length"].get<int64_t>());

    // Projected features per image: its media items' rows, concatenated.
    size_t item = 0;
    for (size_t i = 0; i < c["media"].size(); ++i) {
      const auto& media = c["media"][i];
      const int64_t n_tokens = media["n_tokens"];
      EXPECT_EQ(prompt->image_tokens[i], n_tokens);
      std::vector<float> ours;
      for (int64_t k = 0; k < media["n_items"].get<int64_t>(); ++k, ++item) {
        ASSERT_LT(item, prompt->media_rows.size());
        const auto [first, rows] = prompt->media_rows[item];
        ours.insert(ours.end(), prompt->input.embeds.begin() + first * hidden,
                    prompt->input.embeds.begin() + (first + rows) * hidden);
      }
      ASSERT_EQ(static_cast<int64_t>(ours.size()), n_tokens * hidden);
      const float* ref = tensor(media["features_tensor"], Shape{n_tokens, hidden});
      ASSERT_NE(ref, nullptr);
      EXPECT_LE(golden::max_abs_diff(ours.data(), ref, n_tokens * hidden), kTolerance)
          << "image " << i;
    }

    // Logits of the last positions.
    const auto positions = c["logits_positions"].get<std::vector<int64_t>>();
    const int64_t n_logits = positions[1] - positions[0];
    ASSERT_EQ(positions[1], n);
    std::vector<float> logits(static_cast<size_t>(n_logits * vocab));
    KvCache cache = model_->llm().make_cache(n);
    const Status s =
        model_->llm().forward(prompt->input.embeds.data(), n, cache, logits.data(), n_logits);
    ASSERT_TRUE(s.ok()) << s.to_string();
    const float* ref_logits = tensor(c["logits_tensor"], Shape{n_logits, vocab});
    ASSERT_NE(ref_logits, nullptr);
    EXPECT_LE(golden::max_abs_diff(logits.data(), ref_logits, n_logits * vocab), kTolerance);

    // Greedy continuation.
    const auto expected = c["greedy_ids"].get<std::vector<int32_t>>();
    GenerateOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size());
    auto result = generate(model_->llm(), model_->tokenizer(), prompt->input, options);
    ASSERT_TRUE(result.ok()) << result.status().to_string();
    EXPECT_EQ(result->output_ids, expected);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, VisionGolden,
                         ::testing::ValuesIn(golden::fixture_names("vision")),
                         [](const auto& info) { return golden::param_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VisionGolden);

TEST(VisionGoldenFixtures, Present) { EXPECT_EQ(golden::fixture_names("vision").size(), 3u); }

}  // namespace
}  // namespace vila
