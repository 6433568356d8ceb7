// Chat templates, sampling and UTF-8 streaming.
#include <gtest/gtest.h>

#include <map>

#include "runtime/chat_template.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

namespace vila {
namespace {

TEST(ChatTemplate, Qwen2AsVilaWritesIt) {
  ChatTemplate t{ChatTemplateKind::kQwen2};
  EXPECT_EQ(t.render_user_turn("Hi"),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHi"
            "<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
  EXPECT_FALSE(t.prepend_bos());
}

TEST(ChatTemplate, VicunaAndLlama3) {
  ChatTemplate v{ChatTemplateKind::kVicunaV1};
  EXPECT_EQ(v.render_user_turn("Q?"),
            "A chat between a curious user and an artificial intelligence assistant. The "
            "assistant gives helpful, detailed, and polite answers to the user's questions. "
            "USER: Q? ASSISTANT:");
  EXPECT_TRUE(v.prepend_bos());
  ChatTemplate l{ChatTemplateKind::kLlama3};
  const std::string s = l.render_user_turn("Q?");
  EXPECT_EQ(s.rfind("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n", 0), 0u);
  EXPECT_NE(s.find("<|start_header_id|>user<|end_header_id|>\n\nQ?<|eot_id|>"), std::string::npos);
  const std::string tail = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  EXPECT_EQ(s.substr(s.size() - tail.size()), tail);
}

TEST(ChatTemplate, ChoiceFollowsVila) {
  ChatTemplateHints h;
  h.has_im_start = true;
  EXPECT_EQ(choose_chat_template(h), ChatTemplateKind::kQwen2);
  h.model_path = "/models/Llama-3-VILA1.5-8B";
  EXPECT_EQ(choose_chat_template(h), ChatTemplateKind::kLlama3);
  h.model_path = "/models/VILA1.5-3b";
  EXPECT_EQ(choose_chat_template(h), ChatTemplateKind::kVicunaV1);
  h = {};
  h.is_sentencepiece = true;
  EXPECT_EQ(choose_chat_template(h), ChatTemplateKind::kVicunaV1);
  h.config_name = "llama_3";
  EXPECT_EQ(choose_chat_template(h), ChatTemplateKind::kLlama3);
  EXPECT_FALSE(chat_template_from_name("bogus").ok());
}

TEST(Sampler, GreedyIsArgmaxWithLowestIndexTie) {
  const std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  Sampler s({});
  EXPECT_EQ(s.sample(logits.data(), 4), 1);
}

TEST(Sampler, SeededSamplingIsReproducibleAndFollowsTheDistribution) {
  const std::vector<float> logits = {0.0f, std::log(3.0f), -100.0f};  // p = 1/4, 3/4, ~0
  SamplingParams p{1.0f, 0, 1.0f, 42};
  Sampler a(p), b(p);
  std::map<int, int> counts;
  for (int i = 0; i < 4000; ++i) {
    const int x = a.sample(logits.data(), 3);
    EXPECT_EQ(x, b.sample(logits.data(), 3));
    counts[x]++;
  }
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[1] / 4000.0, 0.75, 0.03);
}

TEST(Sampler, TopKAndTopPRestrictTheCandidates) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 4.0f};
  Sampler k1({1.0f, 1, 1.0f, 7});
  Sampler p_small({1.0f, 0, 0.01f, 7});
  Sampler k2({5.0f, 2, 1.0f, 7});
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(k1.sample(logits.data(), 4), 3);
    EXPECT_EQ(p_small.sample(logits.data(), 4), 3);
    EXPECT_GE(k2.sample(logits.data(), 4), 2);
  }
}

TEST(Sampler, LogSoftmax) {
  const std::vector<float> logits = {0.0f, 0.0f};
  EXPECT_NEAR(log_softmax_at(logits.data(), 2, 0), std::log(0.5), 1e-12);
}

TEST(Utf8, CompletePrefixHoldsBackPartialCodePoints) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  const std::string euro = "\xE2\x82\xAC";  // U+20AC
  EXPECT_EQ(utf8_complete_prefix("a" + euro), 4u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro.substr(0, 2)), 1u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro.substr(0, 1)), 1u);
  const std::string emoji = "\xF0\x9F\x98\x80";
  EXPECT_EQ(utf8_complete_prefix(emoji.substr(0, 3)), 0u);
  EXPECT_EQ(utf8_complete_prefix(emoji), 4u);
  EXPECT_EQ(utf8_complete_prefix("\xFF"), 1u);  // invalid byte never stalls the stream
}

}  // namespace
}  // namespace vila
