// SentencePiece tokenizer.model: a tiny BPE model with byte fallback, identity normalisation and
// whitespace kept (as Llama-2's model is built) is trained at test time with the spm_train CLI
// (~0.1 s). We encode as HF's converted LlamaTokenizer does; with legacy=True (the default) that
// equals libsentencepiece's ids for each segment between added tokens. The legacy=False rule
// (prefix only at the start of the text, none where a space is already) is checked against HF on
// the vila15-llama2 golden fixture.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <random>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace vila {
namespace {

using nlohmann::json;
using testing::TempDir;

class SentencePieceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v spm_train > /dev/null 2>&1") != 0) {
      GTEST_SKIP() << "spm_train (Debian package sentencepiece) is not installed";
    }
    const std::vector<std::string> words = {"the",    "quick",   "brown",    "fox",   "jumps",
                                            "over",   "lazy",    "dog",      "model", "vision",
                                            "image",  "video",   "language", "frame", "token",
                                            "people", "running", "ran",      "Hello", "world"};
    std::mt19937 rng(7);
    std::string corpus;
    for (int line = 0; line < 400; ++line) {
      for (int w = 0; w < 10; ++w) corpus += (w ? " " : "") + words[rng() % words.size()];
      corpus += "\n";
    }
    dir_.write("corpus.txt", corpus);
    const std::string cmd = "spm_train --input=" + dir_.file("corpus.txt") +
                            " --model_prefix=" + dir_.file("tokenizer") +
                            " --vocab_size=400 --model_type=bpe --byte_fallback=true"
                            " --character_coverage=1.0 --normalization_rule_name=identity"
                            " --remove_extra_whitespaces=false --minloglevel=2 > /dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    ASSERT_TRUE(sp_.Load(dir_.file("tokenizer.model")).ok());
  }

  std::vector<int32_t> sp_ids(const std::string& text) {
    std::vector<int> ids;
    EXPECT_TRUE(sp_.Encode(text, &ids).ok());
    return {ids.begin(), ids.end()};
  }

  TempDir dir_;
  sentencepiece::SentencePieceProcessor sp_;
};

TEST_F(SentencePieceTest, MatchesLibSentencePiece) {
  dir_.write("tokenizer_config.json",
             json({{"bos_token", "<s>"},
                   {"eos_token", {{"content", "</s>"}, {"special", true}}},
                   {"unk_token", "<unk>"},
                   {"added_tokens_decoder",
                    {{"0", {{"content", "<unk>"}, {"special", true}}},
                     {"1", {{"content", "<s>"}, {"special", true}}},
                     {"2", {{"content", "</s>"}, {"special", true}}},
                     {"400", {{"content", "<image>"}, {"special", true}, {"rstrip", true}}}}}})
                 .dump());
  auto loaded = Tokenizer::load_dir(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& t = **loaded;
  EXPECT_EQ(t.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(t.n_tokens(), 401);
  EXPECT_EQ(t.bos_id, 1);
  EXPECT_EQ(t.eos_id, 2);
  EXPECT_TRUE(t.add_bos_token);  // LlamaTokenizer's default
  EXPECT_TRUE(t.is_special(1));
  EXPECT_TRUE(t.is_special(400));
  EXPECT_FALSE(t.is_special(t.piece_to_id("\xE2\x96\x81the").value_or(1)));
  EXPECT_EQ(t.piece_to_id("<image>"), 400);
  EXPECT_FALSE(t.piece_to_id("no-such-piece").has_value());

  for (const std::string& text :
       {std::string("Hello world"), std::string("the lazy dog ran over the fox"),
        std::string("caf\xC3\xA9 \xE4\xB8\xAD\xF0\x9F\x98\x80"), std::string("tabs\tand\nnewlines"),
        std::string("UPPER lower 12345"), std::string("trailing spaces  "),
        std::string("  two leading spaces")}) {
    EXPECT_EQ(t.encode(text), sp_ids(text)) << text;
    EXPECT_EQ(t.decode(t.encode(text)), sp_.DecodeIds(sp_ids(text))) << text;
  }
  // Added tokens are cut out first; every segment gets its own dummy prefix. <image> has
  // rstrip, so the spaces after it are dropped.
  std::vector<int32_t> expected = sp_ids("describe");
  expected.push_back(400);
  for (int32_t id : sp_ids("the image")) expected.push_back(id);
  expected.push_back(2);
  EXPECT_EQ(t.encode("describe<image>  the image</s>"), expected);
  EXPECT_EQ(t.encode("<s>"), std::vector<int32_t>{1});

  // Byte pieces: token_bytes gives the raw byte; decode is lossy UTF-8 like HF.
  const auto byte_id = t.piece_to_id("<0xC3>");
  ASSERT_TRUE(byte_id.has_value());
  EXPECT_EQ(t.token_bytes(*byte_id), "\xC3");
  EXPECT_EQ(t.decode({*byte_id}), "\xEF\xBF\xBD");
  const auto the = t.piece_to_id("\xE2\x96\x81the");
  ASSERT_TRUE(the.has_value());
  EXPECT_EQ(t.token_bytes(*the), " the");
  EXPECT_EQ(t.token_bytes(1), "<s>");
  EXPECT_EQ(t.decode({1, *the}), "<s> the");
  // Invalid UTF-8 is replaced, never a crash.
  EXPECT_EQ(t.encode("\xFF"
                     "the"),
            t.encode("\xEF\xBF\xBD"
                     "the"));
}

TEST_F(SentencePieceTest, AddedTokensJsonAndNoConfig) {
  dir_.write("added_tokens.json", json({{"<image>", 400}, {"<video>", 401}}).dump());
  auto loaded = Tokenizer::load_dir(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& t = **loaded;
  EXPECT_EQ(t.n_tokens(), 402);
  EXPECT_FALSE(t.bos_id.has_value());
  EXPECT_FALSE(t.is_special(401));
  std::vector<int32_t> expected = {401};
  for (int32_t id : sp_ids(" frame")) expected.push_back(id);
  EXPECT_EQ(t.encode("<video> frame"), expected);
}

TEST(SentencePieceErrors, CorruptModel) {
  TempDir dir;
  dir.write("tokenizer.model", "this is not a protobuf");
  auto t = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.model"), std::string::npos)
      << t.status().message();
}

}  // namespace
}  // namespace vila
