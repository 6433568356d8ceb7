// The training engine against PyTorch (tests/fixtures/train/golden, scripts/make_golden_train.py):
// a tiny SigLIP + 2x2 projector + Qwen2 model written by transformers, one packed batch of two
// samples with three images. On the CPU in fp32 we must match the float64 reference: the loss,
// every parameter's gradient (relative error <= 1e-4 per tensor), the weight-decay roles, and the
// losses of 5 torch.optim.AdamW steps.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "format/safetensors.h"
#include "golden_fixture.h"
#include "train/model/released_io.h"
#include "train/model/vlm.h"
#include "train/optimizer.h"

namespace vila::train {
namespace {

using fixture::kGoldenDir;
using fixture::read_vec;
const std::string kDir = kGoldenDir;
constexpr double kRelTol = 1e-4;
constexpr double kAbsFloor = 1e-7;

class GoldenTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture::GoldenFixture g;
    const Status s = fixture::load_golden(store_, &g);
    ASSERT_TRUE(s.ok()) << s.message();
    ref_ = std::move(g.ref);
    config_ = g.config;
    batch_ = std::move(g.batch);
    auto model = VlmModel::create(config_, store_);
    ASSERT_TRUE(model.ok()) << model.status().message();
    model_ = std::move(*model);
  }

  nlohmann::json ref_;
  ParamStore store_;
  VlmConfig config_;
  std::unique_ptr<VlmModel> model_;
  PackedBatch batch_;
};

TEST_F(GoldenTrain, LossAndEveryGradient) {
  auto r = model_->forward_backward(batch_, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const double ref_loss = ref_["loss"].get<double>();
  EXPECT_NEAR(r->loss, ref_loss, kRelTol * std::abs(ref_loss));

  auto gf = SafetensorsFile::open(kDir + "/grads.safetensors");
  ASSERT_TRUE(gf.ok());
  std::set<std::string> names;
  for (const auto& n : ref_["parameters"]) names.insert(n.get<std::string>());
  EXPECT_EQ(names.size(), store_.all().size()) << "parameter sets differ";
  double worst = 0;
  std::string worst_name;
  for (const std::string& name : names) {
    Param* p = store_.find(name);
    ASSERT_NE(p, nullptr) << name << " is not a parameter of the engine's model";
    const std::vector<float> g = read_vec<float>(**gf, name);
    ASSERT_EQ(g.size(), p->grad.size()) << name;
    double ref_max = 0, diff_max = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      ref_max = std::max(ref_max, std::abs(static_cast<double>(g[i])));
      diff_max = std::max(diff_max, std::abs(static_cast<double>(p->grad[i]) - g[i]));
    }
    if (ref_max == 0) {  // not reached by the loss (SigLIP's last layer, post_layernorm)
      EXPECT_EQ(diff_max, 0.0) << name;
      continue;
    }
    // The k-projection biases have a zero gradient in exact arithmetic (softmax does not change
    // when a constant is added to every score of a row); both sides hold rounding noise there
    // (~1e-8), hence the absolute floor.
    EXPECT_LE(diff_max, kRelTol * ref_max + kAbsFloor) << name << " (max |g| " << ref_max << ")";
    const double rel = diff_max / ref_max;
    if (ref_max > 1e3 * kAbsFloor && rel > worst) worst = rel, worst_name = name;
  }
  std::printf("worst gradient relative error %.3g (%s)\n", worst, worst_name.c_str());
}

TEST_F(GoldenTrain, WeightDecayRoles) {
  std::set<std::string> no_decay;
  for (const auto& n : ref_["no_decay"]) no_decay.insert(n.get<std::string>());
  for (const Param* p : store_.all()) {
    EXPECT_EQ(p->decays(), no_decay.count(p->full_name()) == 0)
        << p->full_name() << " role " << param_role_name(p->role);
  }
}

TEST_F(GoldenTrain, FiveAdamWSteps) {
  AdamWConfig ac;
  ac.beta1 = ref_["betas"][0].get<double>();
  ac.beta2 = ref_["betas"][1].get<double>();
  ac.eps = ref_["eps"].get<double>();
  ac.weight_decay = ref_["weight_decay"].get<double>();
  auto opt = AdamW::create(ac);
  ASSERT_TRUE(opt.ok());
  const double lr = ref_["lr"].get<double>();
  const auto expected = ref_["adamw_losses"].get<std::vector<double>>();
  for (size_t i = 0; i < expected.size(); ++i) {
    store_.zero_grads();
    auto r = model_->forward_backward(batch_, {});
    ASSERT_TRUE(r.ok());
    EXPECT_NEAR(r->loss, expected[i], kRelTol * std::abs(expected[i])) << "after " << i << " steps";
    if (i + 1 < expected.size()) ASSERT_TRUE(opt->step(store_, lr).ok());
  }
}

}  // namespace
}  // namespace vila::train
