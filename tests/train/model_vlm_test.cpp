// The whole trainable VLM (train/model/vlm.h): fp32 finite-difference gradient check over
// parameters of every module, freezing, gradient accumulation, packing independence, config JSON.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "model_test_util.h"
#include "train/cross_entropy.h"
#include "train/model/vlm.h"

namespace vila::train {
namespace {

using testing::pack;
using testing::random_sample;
using testing::TestSample;

constexpr int32_t kPlaceholder = 0;  // image rows hold id 0 in these tests (text ids are >= 1)

VlmConfig tiny(bool tied) {
  VlmConfig c = vlm_preset("tiny").value();
  c.llm.tie_word_embeddings = tied;
  return c;
}

std::vector<TestSample> two_samples(const VlmConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  return {random_sample(c, rng, 3, 1, 6, kPlaceholder),
          random_sample(c, rng, 2, 2, 5, kPlaceholder)};
}

std::vector<std::vector<float>> grads_of(ParamStore& store) {
  std::vector<std::vector<float>> out;
  for (Param* p : store.all()) out.push_back(p->grad);
  return out;
}

double loss_only(VlmModel& m, const PackedBatch& b) {
  std::vector<float> logits = m.forward_logits(b).value();
  const int64_t V = m.config().llm.vocab;
  return cross_entropy({}, f32_view(logits.data(), {b.tokens(), V}), b.targets.data()).value().loss;
}

TEST(TrainModel, PresetsAndParameterCount) {
  const VlmConfig t = vlm_preset("tiny").value();
  ParamStore store;
  auto m = VlmModel::create(t, store);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(store.count(), t.parameter_count());
  EXPECT_GT(t.parameter_count(), 1000);
  EXPECT_LT(t.parameter_count(), 10000);
  EXPECT_EQ(t.tokens_per_image(), 4);
  const VlmConfig f = vlm_preset("fashion").value();
  EXPECT_EQ(f.tokens_per_image(), 4);  // 4 x 4 patches of 7 px, 2 x 2 projector
  EXPECT_FALSE(vlm_preset("huge").ok());
}

TEST(TrainModel, ConfigJsonRoundTripAndErrors) {
  VlmConfig c = vlm_preset("fashion").value();
  c.llm.vocab = 333;
  c.llm.eos_token_id = 7;
  c.projector.type = "mlp2x_gelu";
  auto back = VlmConfig::from_json(c.to_json(), "cfg.json");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->to_json(), c.to_json());

  nlohmann::json j = c.to_json();
  j["llm"]["hidden"] = "big";
  auto bad = VlmConfig::from_json(j, "cfg.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("llm.hidden"), std::string::npos) << bad.status().message();
  j = c.to_json();
  j["vision_tower"]["heads"] = 5;
  bad = VlmConfig::from_json(j, "cfg.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("vision_tower.heads"), std::string::npos);
  j = c.to_json();
  j["llm"]["hidden_size"] = 5;
  bad = VlmConfig::from_json(j, "cfg.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("llm.hidden_size"), std::string::npos);
  j = c.to_json();
  j["projector"]["type"] = "mlp_swizzle";  // not a VILA projector type
  EXPECT_FALSE(VlmConfig::from_json(j, "cfg.json").ok());
  // Every type of the inference side's table trains (its stages are STC / LN / Linear / GELU).
  j["projector"]["type"] = "mlp_downsample_3x3_s2";
  EXPECT_TRUE(VlmConfig::from_json(j, "cfg.json").ok());
}

// Central differences of the fp32 loss on scalars of every module against forward_backward.
TEST(TrainModel, GradientCheckEveryModule) {
  for (bool tied : {false, true}) {
    const VlmConfig c = tiny(tied);
    ParamStore store;
    auto m = VlmModel::create(c, store).value();
    m->init(5, 0.3f);
    const PackedBatch b = pack(c, two_samples(c, 11), kPlaceholder);
    auto r = m->forward_backward(b, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_GT(r->counted, 0);
    const std::vector<std::vector<float>> analytic = grads_of(store);

    std::mt19937 rng(tied ? 3 : 4);
    std::vector<Param*> all = store.all();
    const std::string unused_layer =
        "vision_model.encoder.layers." + std::to_string(c.vision.layers_run()) + ".";
    int checked = 0, failed = 0;
    for (ParamModule mod :
         {ParamModule::kVisionTower, ParamModule::kProjector, ParamModule::kLlm}) {
      std::vector<size_t> idx;
      for (size_t i = 0; i < all.size(); ++i) {
        if (all[i]->module == mod && all[i]->name.find(unused_layer) == std::string::npos) {
          idx.push_back(i);
        }
      }
      for (int k = 0; k < 10; ++k) {
        const size_t pi = idx[std::uniform_int_distribution<size_t>(0, idx.size() - 1)(rng)];
        Param* p = all[pi];
        const size_t e = std::uniform_int_distribution<size_t>(0, p->value.size() - 1)(rng);
        const float saved = p->value[e];
        constexpr float kStep = 1e-2f;
        p->value[e] = saved + kStep;
        const double lp = loss_only(*m, b);
        p->value[e] = saved - kStep;
        const double lm = loss_only(*m, b);
        p->value[e] = saved;
        const double numeric = (lp - lm) / (2.0 * kStep);
        const double a = analytic[pi][e];
        const double err = std::abs(a - numeric);
        const bool ok = err <= 2e-2 * std::max(std::abs(a), std::abs(numeric)) + 2e-4;
        ++checked;
        if (!ok) {
          ++failed;
          ADD_FAILURE() << p->full_name() << "[" << e << "]: analytic " << a << " numeric "
                        << numeric << (tied ? " (tied)" : " (untied)");
        }
      }
    }
    EXPECT_EQ(checked, 30);
    EXPECT_EQ(failed, 0);
  }
}

TEST(TrainModel, FreezingSkipsGradientsAndKeepsTheRest) {
  const VlmConfig c = tiny(false);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(7, 0.2f);
  const PackedBatch b = pack(c, two_samples(c, 21), kPlaceholder);
  ASSERT_TRUE(m->forward_backward(b, {}).ok());
  const auto full = grads_of(store);
  const auto all = store.all();

  // align-like: vision tower and projector frozen.
  store.zero_grads();
  store.set_trainable(ParamModule::kVisionTower, false);
  store.set_trainable(ParamModule::kProjector, false);
  ASSERT_TRUE(m->forward_backward(b, {}).ok());
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i]->module == ParamModule::kLlm) {
      EXPECT_EQ(all[i]->grad, full[i]) << all[i]->full_name();
    } else {
      EXPECT_TRUE(std::all_of(all[i]->grad.begin(), all[i]->grad.end(), [](float g) {
        return g == 0.0f;
      })) << all[i]->full_name();
    }
  }
  // LLM frozen, vision side trained: the vision grads are unchanged.
  store.zero_grads();
  store.set_trainable(ParamModule::kVisionTower, true);
  store.set_trainable(ParamModule::kProjector, true);
  store.set_trainable(ParamModule::kLlm, false);
  ASSERT_TRUE(m->forward_backward(b, {}).ok());
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i]->module == ParamModule::kLlm) {
      EXPECT_TRUE(std::all_of(all[i]->grad.begin(), all[i]->grad.end(), [](float g) {
        return g == 0.0f;
      })) << all[i]->full_name();
    } else {
      EXPECT_EQ(all[i]->grad, full[i]) << all[i]->full_name();
    }
  }
}

TEST(TrainModel, GradientAccumulationMatchesWholeBatch) {
  const VlmConfig c = tiny(true);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(9, 0.2f);
  const auto samples = two_samples(c, 31);
  const PackedBatch whole = pack(c, samples, kPlaceholder);
  auto rw = m->forward_backward(whole, {});
  ASSERT_TRUE(rw.ok());
  const auto g_whole = grads_of(store);

  store.zero_grads();
  TrainOptions opt;
  opt.normalizer = whole.trained_tokens();
  double loss = 0;
  for (const TestSample& s : samples) {
    auto r = m->forward_backward(pack(c, {s}, kPlaceholder), opt);
    ASSERT_TRUE(r.ok()) << r.status().message();
    loss += r->loss;
  }
  EXPECT_NEAR(loss, rw->loss, 1e-5);
  const auto g_acc = grads_of(store);
  for (size_t i = 0; i < g_acc.size(); ++i) {
    for (size_t e = 0; e < g_acc[i].size(); ++e) {
      ASSERT_NEAR(g_acc[i][e], g_whole[i][e], 1e-5)
          << store.all()[i]->full_name() << "[" << e << "]";
    }
  }
}

TEST(TrainModel, PackedSamplesDoNotSeeEachOther) {
  const VlmConfig c = tiny(false);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(13, 0.3f);
  const auto samples = two_samples(c, 41);
  const std::vector<float> packed = m->forward_logits(pack(c, samples, kPlaceholder)).value();
  const int64_t V = c.llm.vocab;
  size_t offset = 0;
  for (const TestSample& s : samples) {
    const std::vector<float> alone = m->forward_logits(pack(c, {s}, kPlaceholder)).value();
    ASSERT_EQ(alone.size(), s.ids.size() * static_cast<size_t>(V));
    for (size_t i = 0; i < alone.size(); ++i) {
      ASSERT_NEAR(packed[offset + i], alone[i], 1e-5) << i;
    }
    offset += alone.size();
  }
}

TEST(TrainModel, BadBatchesAreErrors) {
  const VlmConfig c = tiny(true);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(1);
  PackedBatch b = pack(c, two_samples(c, 51), kPlaceholder);
  b.pixels.pop_back();
  auto r = m->forward_backward(b, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("pixels"), std::string::npos);
  b = pack(c, two_samples(c, 51), kPlaceholder);
  b.tokens_per_image = 3;
  EXPECT_FALSE(m->forward_backward(b, {}).ok());
  b = pack(c, two_samples(c, 51), kPlaceholder);
  b.ids[0] = static_cast<int32_t>(c.llm.vocab);
  EXPECT_FALSE(m->forward_backward(b, {}).ok());
}

TEST(TrainModel, Bf16PrecisionRunsAndStaysClose) {
  const VlmConfig c = tiny(false);
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(17, 0.2f);
  const PackedBatch b = pack(c, two_samples(c, 61), kPlaceholder);
  const double l32 = m->forward_backward(b, {}).value().loss;
  TrainOptions opt;
  opt.precision = precision_preset("bf16").value();
  const double l16 = m->forward_backward(b, opt).value().loss;
  EXPECT_NEAR(l16, l32, 2e-2);
  EXPECT_NE(l16, l32);
}

}  // namespace
}  // namespace vila::train

namespace vila::train {
namespace {

// Wall time of one forward_backward of the "fashion" preset on a demo-like batch (16 samples of
// one image and 12 text tokens); run with --gtest_also_run_disabled_tests.
TEST(TrainModel, DISABLED_FashionStepTiming) {
  const VlmConfig c = vlm_preset("fashion").value();
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(1);
  std::mt19937 rng(1);
  std::vector<TestSample> samples;
  for (int i = 0; i < 16; ++i) samples.push_back(random_sample(c, rng, 4, 1, 8, kPlaceholder));
  const PackedBatch b = pack(c, samples, kPlaceholder);
  ASSERT_TRUE(m->forward_backward(b, {}).ok());
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kSteps = 10;
  for (int i = 0; i < kSteps; ++i) ASSERT_TRUE(m->forward_backward(b, {}).ok());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
      kSteps;
  std::printf("fashion: %lld params, %lld tokens, %lld images: %.2f ms per forward_backward\n",
              static_cast<long long>(store.count()), static_cast<long long>(b.tokens()),
              static_cast<long long>(b.image_count), ms);
}

}  // namespace
}  // namespace vila::train
