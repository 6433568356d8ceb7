// The whole VLM trained on the GPU (CudaVlmModel, issue 5) against the references:
//   - the PyTorch golden fixture (tests/fixtures/train/golden, scripts/make_golden_train.py): loss,
//     every parameter gradient and the losses of 5 torch.optim.AdamW steps, within bf16 tolerance
//     (the CPU matches the same fixture to 1e-4 in fp32: tests/train/golden_train_test.cpp);
//   - the CPU model with frozen modules (the align stage trains the projector only);
//   - `device: cuda` in the trainer: the loss curve of the CPU run within bf16 tolerance, and a
//     stopped-and-resumed CUDA run equal to an uninterrupted one bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "cuda_test_util.h"

#ifdef VILA_WITH_CUDA
#include "../common/temp_dir.h"
#include "../train/golden_fixture.h"
#include "../train/tiny_run.h"
#include "data/fashion_mnist.h"
#include "format/safetensors.h"
#include "model/vila_model.h"
#include "train/cuda/vlm_cuda.h"
#include "train/model/released_io.h"
#include "train/model/vlm.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#endif

namespace vila::train {
namespace {

#ifdef VILA_WITH_CUDA

namespace fs = std::filesystem;
using nlohmann::json;

// bf16 GEMM operands through a 3-layer tower, a projector and a 2-layer LLM.
constexpr double kLossTol = 2e-2;  // relative
constexpr double kGradTol = 6e-2;  // relative L2 error per tensor
constexpr double kStepTol = 5e-2;  // relative, per AdamW step loss
// The tiny preset (8 channels, weights of std 0.2) amplifies bf16 rounding more: errors of 3-10 %
// spread evenly over every tensor (a wiring mistake shows as O(1) on the tensors it touches).
constexpr double kTinyGradTol = 0.15;

using fixture::read_vec;
const std::string kGolden = fixture::kGoldenDir;

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

class GoldenOnCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    VILA_SKIP_WITHOUT_GPU();
    fixture::GoldenFixture g;
    const Status s = fixture::load_golden(store_, &g);
    ASSERT_TRUE(s.ok()) << s.message();
    ref_ = std::move(g.ref);
    config_ = g.config;
    batch_ = std::move(g.batch);
  }

  json ref_;
  ParamStore store_;
  VlmConfig config_;
  PackedBatch batch_;
};

TEST_F(GoldenOnCuda, LossAndEveryGradient) {
  auto model = CudaVlmModel::create(config_, store_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto r = (*model)->forward_backward(batch_, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const double ref_loss = ref_["loss"].get<double>();
  EXPECT_NEAR(r->loss, ref_loss, kLossTol * ref_loss);
  auto gf = SafetensorsFile::open(kGolden + "/grads.safetensors");
  ASSERT_TRUE(gf.ok());
  double worst = 0;
  std::string worst_name;
  int checked = 0;
  for (const auto& n : ref_["parameters"]) {
    const std::string name = n.get<std::string>();
    const std::vector<float> ref = read_vec<float>(**gf, name);
    auto g = (*model)->params().download_grad(name);
    ASSERT_TRUE(g.ok()) << g.status().message();
    ASSERT_EQ(g->size(), ref.size()) << name;
    double ref_max = 0;
    for (float x : ref) ref_max = std::max(ref_max, std::abs(static_cast<double>(x)));
    if (ref_max == 0) {  // not reached by the loss (SigLIP's last layer, post_layernorm)
      for (float x : *g) ASSERT_EQ(x, 0.0f) << name;
      continue;
    }
    if (name.find("k_proj.bias") != std::string::npos) continue;  // 0 up to rounding noise
    const double e = rel_l2(*g, ref);
    EXPECT_LE(e, kGradTol) << name;
    if (e > worst) worst = e, worst_name = name;
    ++checked;
  }
  EXPECT_GT(checked, 60);
  std::printf(
      "loss %.6f (PyTorch fp64 %.6f); worst gradient relative L2 error %.3g (%s), %d "
      "tensors\n",
      r->loss, ref_loss, worst, worst_name.c_str(), checked);
}

TEST_F(GoldenOnCuda, FiveAdamWSteps) {
  auto model = CudaVlmModel::create(config_, store_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  AdamWConfig ac;
  ac.beta1 = ref_["betas"][0].get<double>();
  ac.beta2 = ref_["betas"][1].get<double>();
  ac.eps = ref_["eps"].get<double>();
  ac.weight_decay = ref_["weight_decay"].get<double>();
  const double lr = ref_["lr"].get<double>();
  const auto expected = ref_["adamw_losses"].get<std::vector<double>>();
  DeviceParams& p = (*model)->params();
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_TRUE(p.zero_grads().ok());
    auto r = (*model)->forward_backward(batch_, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    std::printf("step %zu: loss %.6f, PyTorch fp64 %.6f\n", i, r->loss, expected[i]);
    EXPECT_NEAR(r->loss, expected[i], kStepTol * expected[i]) << "after " << i << " steps";
    if (i + 1 < expected.size()) {
      ASSERT_TRUE(p.adamw_step(ac, lr, 0.0).ok());
    }
  }
  // The moments come back to a host AdamW and the values to the store (checkpoints).
  auto host = AdamW::create(ac);
  ASSERT_TRUE(host.ok());
  ASSERT_TRUE(p.download_state(*host, store_).ok());
  ASSERT_TRUE(p.download_values(store_).ok());
  const AdamWParamState* s = host->state("llm/model.norm.weight");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->step, static_cast<int64_t>(expected.size() - 1));
  auto model2 = CudaVlmModel::create(config_, store_);  // from the downloaded values
  ASSERT_TRUE(model2.ok());
  ASSERT_TRUE((*model2)->params().upload_state(*host, store_).ok());
  auto r1 = (*model)->forward_backward(batch_, {});
  auto r2 = (*model2)->forward_backward(batch_, {});
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_NEAR(r1->loss, r2->loss, 1e-5 * r1->loss);
}

// The align stage: only the projector trains; the LLM and the tower are frozen but the gradient
// still flows through the LLM to the projector.
TEST_F(GoldenOnCuda, FrozenModulesMatchCpu) {
  store_.set_trainable(ParamModule::kLlm, false);
  store_.set_trainable(ParamModule::kVisionTower, false);
  auto cpu = VlmModel::create(config_, store_);
  ASSERT_TRUE(cpu.ok());
  store_.zero_grads();
  auto rc = (*cpu)->forward_backward(batch_, {});
  ASSERT_TRUE(rc.ok());
  auto model = CudaVlmModel::create(config_, store_);
  ASSERT_TRUE(model.ok()) << model.status().message();
  auto rg = (*model)->forward_backward(batch_, {});
  ASSERT_TRUE(rg.ok()) << rg.status().message();
  EXPECT_NEAR(rg->loss, rc->loss, kLossTol * rc->loss);
  int projector = 0;
  for (const Param* p : store_.all()) {
    auto g = (*model)->params().download_grad(p->full_name());
    if (p->module != ParamModule::kProjector) {
      EXPECT_FALSE(g.ok()) << p->full_name() << " is frozen and has no gradient";
      continue;
    }
    ASSERT_TRUE(g.ok()) << g.status().message();
    EXPECT_LE(rel_l2(*g, p->grad), kGradTol) << p->full_name();
    ++projector;
  }
  EXPECT_GE(projector, 4);
}

// Every projector type the CUDA path runs, on the tiny geometry (4 x 4 patches), CPU vs CUDA:
// a packed batch of two samples with one image each, all modules trained.
TEST(VlmCudaTest, ProjectorTypesMatchCpu) {
  VILA_SKIP_WITHOUT_GPU();
  for (const char* type : {"mlp_downsample_2x2_fix", "mlp_downsample_3x3_fix", "mlp2x_gelu",
                           "linear", "mlp_downsample_3x3_s2_new"}) {
    auto config = vlm_preset("tiny");
    ASSERT_TRUE(config.ok());
    config->projector.type = type;
    if (std::string(type) == "mlp_downsample_3x3_s2_new") {  // C/3 and 2C stages: C = 24
      config->vision.hidden = 24;
      config->vision.heads = 2;
    }
    ParamStore store;
    auto cpu = VlmModel::create(*config, store);
    ASSERT_TRUE(cpu.ok()) << type << ": " << cpu.status().message();
    (*cpu)->init(5, 0.2f);
    PackedBatch b;
    const int64_t ti = config->tokens_per_image(), T = 2 * (ti + 6);
    std::mt19937 rng(9);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t s = t / (T / 2), j = t % (T / 2);
      b.ids.push_back(static_cast<int32_t>(rng() % config->llm.vocab));
      b.segments.push_back(static_cast<int32_t>(s));
      if (j >= 2 && j < 2 + ti) b.media_rows.push_back(t);
    }
    for (int64_t t = 0; t < T; ++t) {
      const bool last = t + 1 == T || b.segments[t + 1] != b.segments[t];
      b.targets.push_back(last || t % 3 == 0 ? -100 : b.ids[t + 1]);
    }
    b.image_count = 2;
    b.image_size = config->vision.image_size;
    b.tokens_per_image = ti;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    b.pixels.resize(static_cast<size_t>(2 * 3 * b.image_size * b.image_size));
    for (float& x : b.pixels) x = nd(rng);
    b.samples = 2;
    store.zero_grads();
    auto rc = (*cpu)->forward_backward(b, {});
    ASSERT_TRUE(rc.ok()) << type << ": " << rc.status().message();
    auto gpu = CudaVlmModel::create(*config, store);
    ASSERT_TRUE(gpu.ok()) << type << ": " << gpu.status().message();
    auto rg = (*gpu)->forward_backward(b, {});
    ASSERT_TRUE(rg.ok()) << type << ": " << rg.status().message();
    EXPECT_NEAR(rg->loss, rc->loss, kLossTol * rc->loss) << type;
    double worst = 0;
    for (const Param* p : store.all()) {
      double ref = 0;
      for (float x : p->grad) ref = std::max(ref, std::abs(static_cast<double>(x)));
      if (ref < 1e-6 || p->name.find("k_proj.bias") != std::string::npos) continue;
      auto g = (*gpu)->params().download_grad(p->full_name());
      ASSERT_TRUE(g.ok());
      const double e = rel_l2(*g, p->grad);
      EXPECT_LE(e, kTinyGradTol) << type << " " << p->full_name();
      worst = std::max(worst, e);
    }
    std::printf("%s: loss cpu %.6f cuda %.6f, worst gradient error %.3g\n", type, rc->loss,
                rg->loss, worst);
  }
}

// A packed batch of two samples on the tiny preset: with one image each (media rows 2 .. 2+Ti of
// every sample), or text only; ids, targets and pixels from `seed`.
PackedBatch tiny_batch(const VlmConfig& config, uint32_t seed, bool images) {
  PackedBatch b;
  const int64_t ti = config.tokens_per_image(), T = 2 * (ti + 6);
  std::mt19937 rng(seed);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t s = t / (T / 2), j = t % (T / 2);
    b.ids.push_back(static_cast<int32_t>(rng() % config.llm.vocab));
    b.segments.push_back(static_cast<int32_t>(s));
    if (images && j >= 2 && j < 2 + ti) b.media_rows.push_back(t);
  }
  for (int64_t t = 0; t < T; ++t) {
    const bool last = t + 1 == T || b.segments[t + 1] != b.segments[t];
    b.targets.push_back(last || t % 3 == 0 ? -100 : b.ids[t + 1]);
  }
  b.samples = 2;
  if (!images) return b;
  b.image_count = 2;
  b.image_size = config.vision.image_size;
  b.tokens_per_image = ti;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  b.pixels.resize(static_cast<size_t>(2 * config.vision.channels * b.image_size * b.image_size));
  for (float& x : b.pixels) x = nd(rng);
  return b;
}

// Fills `store` with `config`'s parameters as the CPU model initialises them (seed, scale 0.2);
// the CUDA models of the tests below then upload them.
void init_params(const VlmConfig& config, uint64_t seed, ParamStore& store) {
  auto cpu = VlmModel::create(config, store);
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  (*cpu)->init(seed, 0.2f);
}

// Every gradient of `store`'s trainable parameters, by full name, from the device.
std::map<std::string, std::vector<float>> all_grads(CudaVlmModel& model, const ParamStore& store) {
  std::map<std::string, std::vector<float>> out;
  for (const Param* p : store.all()) {
    auto g = model.params().download_grad(p->full_name());
    EXPECT_TRUE(g.ok()) << g.status().message();
    if (g.ok()) out[p->full_name()] = std::move(*g);
  }
  return out;
}

// Lazy gradient zeroing: a step that does not reach the tower and the projector (text only) after
// one that did reads their gradients as exactly 0, on the host and in the device norm.
TEST(VlmCudaTest, UnreachedGradientReadsZero) {
  VILA_SKIP_WITHOUT_GPU();
  auto config = vlm_preset("tiny");
  ASSERT_TRUE(config.ok());
  ParamStore store;
  ASSERT_NO_FATAL_FAILURE(init_params(*config, 5, store));
  auto gpu = CudaVlmModel::create(*config, store);
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  DeviceParams& P = (*gpu)->params();
  const std::string tower_w = "vision_tower/vision_model.encoder.layers.0.mlp.fc1.weight";
  ASSERT_TRUE(P.zero_grads().ok());
  ASSERT_TRUE((*gpu)->forward_backward(tiny_batch(*config, 3, true), {}).ok());
  auto reached = P.download_grad(tower_w);
  ASSERT_TRUE(reached.ok());
  double reached_max = 0;
  for (float x : *reached) reached_max = std::max(reached_max, std::abs(static_cast<double>(x)));
  ASSERT_GT(reached_max, 0.0) << "the image batch reaches " << tower_w;
  ASSERT_TRUE(P.zero_grads().ok());
  const PackedBatch text = tiny_batch(*config, 4, false);
  ASSERT_TRUE((*gpu)->forward_backward(text, {}).ok());
  auto norm = P.grad_norm();  // zeroes the unreached entries on the device
  ASSERT_TRUE(norm.ok()) << norm.status().message();
  double sumsq = 0;
  int zero_tensors = 0;
  for (const auto& [name, g] : all_grads(**gpu, store)) {
    const bool unreached =
        name.rfind("vision_tower/", 0) == 0 || name.rfind("mm_projector/", 0) == 0;
    for (float x : g) {
      if (unreached) {
        ASSERT_EQ(x, 0.0f) << name;
      }
      sumsq += static_cast<double>(x) * x;
    }
    zero_tensors += unreached ? 1 : 0;
  }
  EXPECT_GT(zero_tensors, 10);
  EXPECT_NEAR(*norm, std::sqrt(sumsq), 1e-6 * std::sqrt(sumsq));
  // The same as a fresh model's norm on the text batch alone.
  auto fresh = CudaVlmModel::create(*config, store);
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE((*fresh)->forward_backward(text, {}).ok());
  auto fresh_norm = (*fresh)->params().grad_norm();
  ASSERT_TRUE(fresh_norm.ok());
  EXPECT_NEAR(*norm, *fresh_norm, 1e-5 * *fresh_norm);
  std::printf("text-only step after an image step: grad norm %.6g (fresh model %.6g)\n", *norm,
              *fresh_norm);
}

// Gradient accumulation: two micro-batches without zero_grads() between them give the sum of
// their single-batch gradients (the second one's GEMMs run with beta 1).
TEST(VlmCudaTest, MicroBatchesAccumulate) {
  VILA_SKIP_WITHOUT_GPU();
  auto config = vlm_preset("tiny");
  ASSERT_TRUE(config.ok());
  ParamStore store;
  ASSERT_NO_FATAL_FAILURE(init_params(*config, 6, store));
  auto gpu = CudaVlmModel::create(*config, store);
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  DeviceParams& P = (*gpu)->params();
  const PackedBatch b1 = tiny_batch(*config, 11, true);
  const PackedBatch b2 = tiny_batch(*config, 12, true);
  ASSERT_TRUE(P.zero_grads().ok());
  ASSERT_TRUE((*gpu)->forward_backward(b1, {}).ok());
  const auto g1 = all_grads(**gpu, store);
  ASSERT_TRUE(P.zero_grads().ok());
  ASSERT_TRUE((*gpu)->forward_backward(b2, {}).ok());
  const auto g2 = all_grads(**gpu, store);
  ASSERT_TRUE(P.zero_grads().ok());
  ASSERT_TRUE((*gpu)->forward_backward(b1, {}).ok());
  ASSERT_TRUE((*gpu)->forward_backward(b2, {}).ok());
  const auto g12 = all_grads(**gpu, store);
  double worst = 0;
  int checked = 0;
  for (const auto& [name, g] : g12) {
    std::vector<float> sum(g.size());
    double ref = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      sum[i] = g1.at(name)[i] + g2.at(name)[i];
      ref = std::max(ref, std::abs(static_cast<double>(sum[i])));
    }
    if (ref == 0) {
      for (float x : g) ASSERT_EQ(x, 0.0f) << name;
      continue;
    }
    const double e = rel_l2(g, sum);
    EXPECT_LE(e, 1e-5) << name;  // fp32 rounding (and fp32 atomics' order)
    worst = std::max(worst, e);
    ++checked;
  }
  EXPECT_GT(checked, 20);
  std::printf("two micro-batches vs the sum of single ones: worst relative L2 %.3g, %d tensors\n",
              worst, checked);
}

// CudaVlmOptions::deterministic at head dims the FlashAttention-2 backward takes (64 in the tower
// and the LLM, GQA): two steps on the same batch give bitwise equal gradients and losses, and they
// match the default (flash, atomics) step's within bf16 tolerance.
TEST(VlmCudaTest, DeterministicStepAtFlashHeadDims) {
  VILA_SKIP_WITHOUT_GPU();
  auto config = vlm_preset("tiny");
  ASSERT_TRUE(config.ok());
  config->vision.hidden = 64;
  config->vision.heads = 1;
  config->vision.intermediate = 64;
  config->llm.hidden = 128;
  config->llm.heads = 2;
  config->llm.kv_heads = 1;
  config->llm.intermediate = 64;
  ASSERT_TRUE(config->validate().ok()) << config->validate().message();
  ParamStore store;
  ASSERT_NO_FATAL_FAILURE(init_params(*config, 8, store));
  CudaVlmOptions exact;
  exact.deterministic = true;
  auto det = CudaVlmModel::create(*config, store, exact);
  auto fast = CudaVlmModel::create(*config, store);
  ASSERT_TRUE(det.ok() && fast.ok());
  const PackedBatch b = tiny_batch(*config, 21, true);
  std::vector<std::map<std::string, std::vector<float>>> grads;
  std::vector<double> losses;
  for (CudaVlmModel* m : {det->get(), det->get(), fast->get()}) {
    ASSERT_TRUE(m->params().zero_grads().ok());
    auto r = m->forward_backward(b, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    losses.push_back(r->loss);
    grads.push_back(all_grads(*m, store));
  }
  EXPECT_EQ(losses[0], losses[1]);
  int checked = 0;
  for (const auto& [name, g] : grads[0]) {
    EXPECT_EQ(g, grads[1].at(name)) << name << ": two deterministic steps differ";
    // A k bias's gradient is zero in exact arithmetic (softmax ignores a per-query constant): both
    // paths leave rounding noise there, which has no relative error to compare.
    const bool zero_in_theory = name.find("k_proj.bias") != std::string::npos;
    const double ref = rel_l2(grads[2].at(name), g);
    if (std::isfinite(ref) && !zero_in_theory) {
      EXPECT_LE(ref, kGradTol) << name << ": deterministic vs flash";
    }
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

using fixture::have_fashion;
using fixture::train;

// The trainer tests' tiny run, 8 steps with clipping, on `device`.
json tiny_run(const std::string& output, const std::string& device) {
  json j = fixture::tiny_run(output, 8);
  j["clip_grad_norm"] = 1.0;
  j["device"] = device;
  return j;
}

TEST(TrainerOnCuda, FollowsTheCpuRunAndResumes) {
  VILA_SKIP_WITHOUT_GPU();
  if (!have_fashion()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  testing::TempDir c, g, h;
  auto cpu = train(tiny_run(c.path(), "cpu"), {});
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto gpu = train(tiny_run(g.path(), "cuda"), {});
  ASSERT_TRUE(gpu.ok()) << gpu.status().message();
  ASSERT_EQ(gpu->size(), cpu->size());
  for (size_t i = 0; i < cpu->size(); ++i) {
    std::printf("step %zu: cpu %.5f cuda %.5f\n", i + 1, (*cpu)[i], (*gpu)[i]);
    EXPECT_NEAR((*gpu)[i], (*cpu)[i], kStepTol * (*cpu)[i]) << "step " << i + 1;
  }
  TrainerOptions first;
  first.stop_after = 3;
  ASSERT_TRUE(train(tiny_run(h.path(), "cuda"), first).ok());
  TrainerOptions again;
  again.resume = true;
  auto rest = train(tiny_run(h.path(), "cuda"), again);
  ASSERT_TRUE(rest.ok()) << rest.status().message();
  ASSERT_EQ(rest->size(), gpu->size());
  // Bit for bit: the CUDA step has no atomics whose order could differ between the two runs (the
  // cross-block sums of partials.h; this tiny model's attention backward is the materialised one).
  for (size_t i = 0; i < gpu->size(); ++i) {
    EXPECT_EQ((*rest)[i], (*gpu)[i]) << "step " << i + 1;
  }
  // The CUDA run's checkpoint is a released model the inference side loads.
  auto loaded = VilaModel::load(g.path() + "/model");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  // 8-bit optimizer states are CPU-only for now: refused clearly.
  json i8 = tiny_run(h.path() + "/i8", "cuda");
  i8["optimizer"]["state_format"] = "i8_block";
  auto refused = train(i8, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("f32"), std::string::npos)
      << refused.status().message();
}

#else
TEST(GoldenOnCuda, SkippedWithoutCuda) { GTEST_SKIP() << "no CUDA build"; }
#endif

}  // namespace
}  // namespace vila::train
