// Golden tests: tiny random checkpoints in the released layouts, with fp32 reference logits and
// greedy continuations from transformers (scripts/make_golden.py, run on the GPU machine).
// CPU fp32 must match every position's logits to 1e-4 and the greedy continuation exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/golden_util.h"
#include "format/safetensors.h"
#include "model/vila_model.h"
#include "runtime/generate.h"
#include "runtime/kv_cache.h"

namespace vila {
namespace {

namespace fs = std::filesystem;
constexpr double kLogitTolerance = 1e-4;

class GoldenModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = (fs::path(VILA_FIXTURES_DIR) / "models" / GetParam()).string();
    std::ifstream in(dir_ + "/reference.json");
    ASSERT_TRUE(in.good());
    reference_ = nlohmann::json::parse(in);
    auto model = VilaModel::load(dir_);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    model_ = std::move(*model);
  }

  std::string dir_;
  nlohmann::json reference_;
  std::unique_ptr<VilaModel> model_;
};

TEST_P(GoldenModel, LayoutAndVocabulary) {
  const std::string layout = reference_["layout"];
  EXPECT_EQ(checkpoint_layout_name(model_->layout()), layout);
  EXPECT_EQ(model_->llm().config().vocab_size, reference_["vocab_size"].get<int64_t>());
  EXPECT_EQ(chat_template_name(model_->chat_template().kind),
            reference_["template"].get<std::string>());
}

TEST_P(GoldenModel, PromptTokensMatchHuggingFace) {
  for (const auto& prompt : reference_["prompts"]) {
    const auto expected = prompt["input_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> ids;
    if (prompt["kind"] == "chat") {
      auto encoded = model_->encode_prompt(prompt["message"].get<std::string>(), false);
      ASSERT_TRUE(encoded.ok()) << encoded.status().to_string();
      ids = *encoded;
    } else {
      ids = model_->tokenizer().encode(prompt["text"].get<std::string>());
    }
    EXPECT_EQ(ids, expected) << "prompt " << prompt["name"];
  }
}

TEST_P(GoldenModel, LogitsMatchTransformersFp32) {
  auto logits_file = Checkpoint::open_file(dir_ + "/reference_logits.safetensors");
  ASSERT_TRUE(logits_file.ok()) << logits_file.status().to_string();
  LanguageModel& llm = model_->llm();
  const int64_t vocab = llm.config().vocab_size;
  const int64_t hidden = llm.config().hidden;
  int index = 0;
  for (const auto& prompt : reference_["prompts"]) {
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    const auto n = static_cast<int64_t>(ids.size());
    auto ref = (*logits_file)->get("prompt" + std::to_string(index++), Shape{n, vocab});
    ASSERT_TRUE(ref.ok()) << ref.status().to_string();
    const auto* expected = reinterpret_cast<const float*>((*ref)->data);

    std::vector<float> embeds(static_cast<size_t>(n * hidden));
    std::vector<float> logits(static_cast<size_t>(n * vocab));
    ASSERT_TRUE(llm.embed(ids.data(), n, embeds.data()).ok());
    KvCache cache = llm.make_cache(n);
    const Status s = llm.forward(embeds.data(), n, cache, logits.data(), n);
    ASSERT_TRUE(s.ok()) << s.to_string();
    double max_diff = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n * vocab; ++i) {
      const double d = std::fabs(static_cast<double>(logits[i]) - expected[i]);
      if (!(d <= max_diff)) {  // also catches NaN
        max_diff = d;
        worst = i;
      }
    }
    EXPECT_LE(max_diff, kLogitTolerance)
        << "prompt " << prompt["name"] << ": worst position " << worst / vocab << ", token "
        << worst % vocab << ": ours " << logits[worst] << " vs " << expected[worst];
  }
}

TEST_P(GoldenModel, GreedyContinuationMatches) {
  for (const auto& prompt : reference_["prompts"]) {
    const auto ids = prompt["input_ids"].get<std::vector<int32_t>>();
    const auto expected = prompt["greedy_ids"].get<std::vector<int32_t>>();
    GenerateOptions options;
    options.max_new_tokens = static_cast<int64_t>(expected.size());
    auto result = generate(model_->llm(), model_->tokenizer(), ids, options);
    ASSERT_TRUE(result.ok()) << result.status().to_string();
    EXPECT_EQ(result->output_ids, expected) << "prompt " << prompt["name"];
  }
}

TEST_P(GoldenModel, TokenizerMatchesOnRealSentences) {
  const std::string ref_path = dir_ + "/tokenizer_ref.jsonl";
  const std::string sentences_path = std::string(VILA_FIXTURES_DIR) + "/tokenizer/sentences.jsonl";
  std::ifstream refs(ref_path);
  std::ifstream sentences(sentences_path);
  ASSERT_TRUE(refs.good()) << ref_path;
  ASSERT_TRUE(sentences.good()) << sentences_path;
  std::string ref_line, text_line;
  int checked = 0, mismatches = 0;
  while (std::getline(refs, ref_line) && std::getline(sentences, text_line)) {
    const auto text = nlohmann::json::parse(text_line)["text"].get<std::string>();
    const auto expected = nlohmann::json::parse(ref_line)["ids"].get<std::vector<int32_t>>();
    const auto ids = model_->tokenizer().encode(text);
    if (ids != expected && ++mismatches <= 3) ADD_FAILURE() << "tokenizer mismatch on: " << text;
    ++checked;
  }
  EXPECT_GE(checked, 100);
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenModel,
                         ::testing::ValuesIn(golden::fixture_names("models")),
                         [](const auto& info) { return golden::param_name(info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenModel);

TEST(GoldenFixtures, Present) {
  EXPECT_GE(golden::fixture_names("models").size(), 5u)
      << "tests/fixtures/models/* with reference.json";
}

}  // namespace
}  // namespace vila
