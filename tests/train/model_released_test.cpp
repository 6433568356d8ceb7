// The trainable VLM saved in the released layout (train/model/released_io.h) and checked against
// the inference side: VilaModel + VisionEncoder load the folder and their logits for a prompt with
// images equal forward_logits of the same PackedBatch. Also save -> load round trips and the
// errors for a missing or mis-shaped tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "format/safetensors.h"
#include "model/vila_model.h"
#include "model/vision_encoder.h"
#include "model_test_util.h"
#include "train/model/released_io.h"
#include "train/model/vlm.h"

namespace vila::train {
namespace {

namespace fs = std::filesystem;
using testing::pack;
using testing::random_sample;
using testing::TestSample;

const std::string kTokenizerDir = std::string(VILA_FIXTURES_DIR) + "/vision/nvila-lite/llm";

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "vila_model_released_" + name;
  fs::remove_all(d);
  return d;
}

// tiny, with a vocabulary that covers the fixture tokenizer (ids up to 770, <image> = 769).
VlmConfig oracle_config(bool tied) {
  VlmConfig c = vlm_preset("tiny").value();
  c.llm.vocab = 776;
  c.llm.tie_word_embeddings = tied;
  c.llm.eos_token_id = 765;
  c.llm.bos_token_id = 766;
  return c;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(TrainModelReleased, InferenceLogitsMatchForwardLogits) {
  for (bool tied : {true, false}) {
    const VlmConfig c = oracle_config(tied);
    ParamStore store;
    auto m = VlmModel::create(c, store).value();
    m->init(tied ? 101 : 102, 0.2f);
    const std::string dir = temp_dir(tied ? "oracle_tied" : "oracle_untied");
    SaveReleasedOptions opt;
    opt.tokenizer_files = tokenizer_files_in(kTokenizerDir);
    ASSERT_FALSE(opt.tokenizer_files.empty());
    Status st = save_released(dir, c, store, opt);
    ASSERT_TRUE(st.ok()) << st.message();

    auto vm = VilaModel::load(dir);
    ASSERT_TRUE(vm.ok()) << vm.status().message();
    ASSERT_TRUE((*vm)->image_token_id().has_value());
    const int32_t image_id = *(*vm)->image_token_id();
    EXPECT_EQ(image_id, 769);
    auto venc = VisionEncoder::load(dir);
    ASSERT_TRUE(venc.ok()) << venc.status().message();
    ASSERT_EQ((*venc)->tokens_per_tile(), c.tokens_per_image());

    std::mt19937 rng(tied ? 7 : 8);
    const std::vector<TestSample> samples = {random_sample(c, rng, 4, 1, 7, image_id),
                                             random_sample(c, rng, 3, 2, 6, image_id)};
    const int64_t V = c.llm.vocab, H = c.llm.hidden, S = c.vision.image_size;
    const int64_t px_per_image = 3 * S * S;
    LanguageModel& llm = (*vm)->llm();
    std::vector<std::vector<float>> alone_logits;
    for (const TestSample& s : samples) {
      // Inference: embed the text ids, each image's projected tokens in its placeholder rows.
      const auto T = static_cast<int64_t>(s.ids.size());
      std::vector<float> embeds(static_cast<size_t>(T * H));
      for (int64_t t = 0; t < T; ++t) {
        if (s.ids[t] == image_id) continue;
        ASSERT_TRUE(llm.embed(&s.ids[t], 1, embeds.data() + t * H).ok());
      }
      for (int64_t n = 0; n < s.images; ++n) {
        ImageTiles tiles;
        tiles.pixels.assign(s.pixels.begin() + n * px_per_image,
                            s.pixels.begin() + (n + 1) * px_per_image);
        tiles.n_tiles = 1;
        tiles.size = S;
        int64_t n_tokens = 0;
        auto feats = (*venc)->encode(tiles, &n_tokens);
        ASSERT_TRUE(feats.ok()) << feats.status().message();
        ASSERT_EQ(n_tokens, c.tokens_per_image());
        for (int64_t j = 0; j < n_tokens; ++j) {
          const int64_t row = s.media[static_cast<size_t>(n * n_tokens + j)];
          std::copy_n(feats->data() + j * H, H, embeds.data() + row * H);
        }
      }
      KvCache cache = llm.make_cache(T);
      std::vector<float> ref(static_cast<size_t>(T * V));
      ASSERT_TRUE(llm.forward(embeds.data(), T, cache, ref.data(), T).ok());

      const std::vector<float> got = m->forward_logits(pack(c, {s}, image_id)).value();
      ASSERT_EQ(got.size(), ref.size());
      float scale = 0;
      for (float v : ref) scale = std::max(scale, std::abs(v));
      EXPECT_GT(scale, 0.1f);  // logits of real size, not ~0
      if (std::getenv("VILA_ORACLE_VERBOSE") != nullptr) {
        std::printf("oracle %s: max logit %.3f, max diff %.3g\n", tied ? "tied" : "untied", scale,
                    max_abs_diff(got.data(), ref.data(), ref.size()));
      }
      EXPECT_LE(max_abs_diff(got.data(), ref.data(), ref.size()), 1e-4f)
          << (tied ? "tied" : "untied");
      alone_logits.push_back(got);
    }
    // Both samples packed in one batch: each one's logits as when it runs alone.
    const std::vector<float> packed = m->forward_logits(pack(c, samples, image_id)).value();
    size_t off = 0;
    for (const auto& a : alone_logits) {
      EXPECT_LE(max_abs_diff(packed.data() + off, a.data(), a.size()), 1e-5f);
      off += a.size();
    }
    fs::remove_all(dir);
  }
}

TEST(TrainModelReleased, SaveLoadRoundTrip) {
  VlmConfig c = oracle_config(false);
  c.projector.type = "mlp2x_gelu";
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(3);
  const std::string dir = temp_dir("roundtrip");
  ASSERT_TRUE(save_released(dir, c, store).ok());
  // Saving again replaces the folder whole; no temporary folder is left behind.
  ASSERT_TRUE(save_released(dir, c, store).ok());
  for (const auto& e : fs::directory_iterator(fs::path(dir).parent_path())) {
    EXPECT_EQ(e.path().filename().string().find("vila_model_released_roundtrip.tmp-"),
              std::string::npos);
  }

  ParamStore loaded;
  VlmConfig back;
  Status st = load_released(dir, loaded, &back);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(back.to_json(), c.to_json());
  ASSERT_EQ(loaded.count(), store.count());
  for (Param* p : store.all()) {
    Param* q = loaded.find(p->full_name());
    ASSERT_NE(q, nullptr) << p->full_name();
    EXPECT_EQ(q->value, p->value) << p->full_name();
    EXPECT_EQ(q->role, p->role) << p->full_name();
  }
  // The loaded store drives a model directly.
  EXPECT_TRUE(VlmModel::create(back, loaded).ok());

  // bf16: values rounded to bf16 and back.
  SaveReleasedOptions bf;
  bf.dtype = DType::kBF16;
  ASSERT_TRUE(save_released(dir, c, store, bf).ok());
  ParamStore lb;
  ASSERT_TRUE(load_released(dir, lb, nullptr).ok());
  for (Param* p : store.all()) {
    const Param* q = lb.find(p->full_name());
    for (size_t i = 0; i < p->value.size(); ++i) {
      ASSERT_EQ(q->value[i], bf16_to_f32(f32_to_bf16(p->value[i]))) << p->full_name();
    }
  }
  fs::remove_all(dir);
}

TEST(TrainModelReleased, MissingOrMisshapedTensorIsNamed) {
  const VlmConfig c = oracle_config(true);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(4);
  const std::string dir = temp_dir("broken");
  ASSERT_TRUE(save_released(dir, c, store).ok());
  const std::string proj = dir + "/mm_projector/model.safetensors";
  const std::string victim = "layers.2.weight";
  Param* w = store.find(ParamModule::kProjector, victim);
  ASSERT_NE(w, nullptr);

  // Rewrite the projector without `victim`.
  auto rewrite = [&](bool drop, const Shape& shape) {
    SafetensorsWriter writer;
    for (Param* p : store.all()) {
      if (p->module != ParamModule::kProjector) continue;
      if (p->name == victim) {
        if (drop) continue;
        std::vector<float> v(static_cast<size_t>(shape.numel()), 0.0f);
        ASSERT_TRUE(writer.add(p->name, DType::kF32, shape, v.data(), v.size() * 4).ok());
        continue;
      }
      ASSERT_TRUE(
          writer.add(p->name, DType::kF32, p->shape, p->value.data(), p->value.size() * 4).ok());
    }
    ASSERT_TRUE(writer.write(proj).ok());
  };
  rewrite(true, {});
  ParamStore a;
  Status st = load_released(dir, a, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("mm_projector"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(victim), std::string::npos) << st.message();

  rewrite(false, {w->shape[0], w->shape[1] + 1});
  ParamStore b;
  st = load_released(dir, b, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("mm_projector/model.safetensors"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(victim), std::string::npos) << st.message();

  // A store whose parameter has another shape is refused by name.
  ParamStore wrong;
  ASSERT_TRUE(wrong.add(ParamModule::kLlm, "model.norm.weight", ParamRole::kNorm, {3}).ok());
  st = load_released(dir, wrong, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("llm/model.norm.weight"), std::string::npos) << st.message();
  fs::remove_all(dir);
}

TEST(TrainModelReleased, MissingTokenizerFileFailsAndKeepsOldFolder) {
  const VlmConfig c = oracle_config(true);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(5);
  const std::string dir = temp_dir("keep");
  ASSERT_TRUE(save_released(dir, c, store).ok());
  SaveReleasedOptions opt;
  opt.tokenizer_files = {dir + "/no_such_tokenizer.json"};
  Status st = save_released(dir, c, store, opt);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no_such_tokenizer.json"), std::string::npos);
  ParamStore again;
  EXPECT_TRUE(load_released(dir, again, nullptr).ok());  // the previous checkpoint is intact
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vila::train
