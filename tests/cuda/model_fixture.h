// A gtest fixture over one tests/fixtures/models/* folder (the test parameter): skips without a
// GPU, loads the model and its reference.json, and gives the CPU oracle's embeddings and logits
// that the CUDA end-to-end tests compare against.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "model/vila_model.h"
#include "runtime/kv_cache.h"

namespace vila::testing {

class ModelFixtureTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA build or no CUDA device";
    dir_ = (std::filesystem::path(VILA_FIXTURES_DIR) / "models" / GetParam()).string();
    std::ifstream in(dir_ + "/reference.json");
    ASSERT_TRUE(in.good());
    reference_ = nlohmann::json::parse(in);
    auto model = VilaModel::load(dir_);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    model_ = std::move(*model);
  }

  // Token embeddings (n, C) from the checkpoint.
  std::vector<float> embed(const std::vector<int32_t>& ids) {
    std::vector<float> e(ids.size() * static_cast<size_t>(model_->llm().config().hidden));
    EXPECT_TRUE(model_->llm().embed(ids.data(), static_cast<int64_t>(ids.size()), e.data()).ok());
    return e;
  }

  // The CPU fp32 oracle's logits (n, V) at every position of `ids`.
  std::vector<float> cpu_logits(const std::vector<int32_t>& ids) {
    LanguageModel& llm = model_->llm();
    const auto n = static_cast<int64_t>(ids.size());
    std::vector<float> logits(static_cast<size_t>(n * llm.config().vocab_size));
    KvCache cache = llm.make_cache(n);
    const auto e = embed(ids);
    EXPECT_TRUE(llm.forward(e.data(), n, cache, logits.data(), n).ok());
    return logits;
  }

  std::string dir_;
  nlohmann::json reference_;
  std::unique_ptr<VilaModel> model_;
};

}  // namespace vila::testing
