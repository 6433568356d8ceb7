// Unit tests on small hand-made tokenizers: BPE merging, added tokens, byte fallback,
// ignore_merges, the slow vocab.json + merges.txt path, configs and error messages.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace vila {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr const char* kQwenRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::vector<std::string> kMerges = {"h e", "l l", "he ll", "hell o", "Ġ t", "Ġt he", "Ġ w"};

// Byte-level vocabulary: the 256 byte characters (id = byte), then the merged tokens, then extra.
json byte_vocab(const std::vector<std::string>& merges, const std::vector<std::string>& extra) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[tok::byte_to_unicode(static_cast<uint8_t>(b))] = b;
  int next = 256;
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ');
    const std::string merged = m.substr(0, sp) + m.substr(sp + 1);
    if (!vocab.contains(merged)) vocab[merged] = next++;
  }
  for (const std::string& e : extra) {
    if (!vocab.contains(e)) vocab[e] = next++;
  }
  return vocab;
}

json added(int id, const std::string& content, bool special, bool lstrip = false,
           bool rstrip = false, bool single_word = false, bool normalized = false) {
  return {{"id", id},
          {"content", content},
          {"special", special},
          {"lstrip", lstrip},
          {"rstrip", rstrip},
          {"single_word", single_word},
          {"normalized", normalized}};
}

// A Qwen2-like tokenizer.json: NFC, the Qwen regex, byte-level BPE, ByteLevel decoder.
json qwen_like(bool ignore_merges = false) {
  json j;
  j["version"] = "1.0";
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", kQwenRegex}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"},
                {"vocab", byte_vocab(kMerges, {"xyz"})},
                {"merges", kMerges},
                {"ignore_merges", ignore_merges}};
  j["added_tokens"] = {added(500, "<|im_start|>", true),
                       added(501, "<|im_end|>", true),
                       added(502, "<a>", false),
                       added(503, "<a><b>", false),
                       added(504, "<mask>", true, /*lstrip=*/true),
                       added(505, "<r>", true, false, /*rstrip=*/true),
                       added(506, "<sw>", false, false, false, /*single_word=*/true),
                       added(507, "\xC3\xA9", false, false, false, false, /*normalized=*/true)};
  return j;
}

std::unique_ptr<Tokenizer> load(const json& j) {
  auto t = Tokenizer::load_json_string(j.dump());
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

int32_t id_of(const Tokenizer& t, const std::string& piece) {
  auto id = t.piece_to_id(piece);
  EXPECT_TRUE(id.has_value()) << piece;
  return id.value_or(-1);
}

TEST(TokenizerJson, MergesByRankLeftmostFirst) {
  auto t = load(qwen_like());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(t->encode("hello"), std::vector<int32_t>{id_of(*t, "hello")});
  EXPECT_EQ(t->encode(" the"), std::vector<int32_t>{id_of(*t, "Ġthe")});
  // Two equal-rank pairs: the leftmost merges first.
  EXPECT_EQ(t->encode("lll"), (std::vector<int32_t>{id_of(*t, "ll"), 'l'}));
  EXPECT_EQ(t->encode("hello the"), (std::vector<int32_t>{id_of(*t, "hello"), id_of(*t, "Ġthe")}));
  EXPECT_EQ(t->encode(""), std::vector<int32_t>{});
  EXPECT_EQ(t->n_tokens(), 508);
  EXPECT_EQ(t->id_to_piece(id_of(*t, "Ġthe")), "Ġthe");
  EXPECT_EQ(t->id_to_piece(100000), "");
  EXPECT_FALSE(t->piece_to_id("nope").has_value());
}

TEST(TokenizerJson, IgnoreMerges) {
  auto plain = load(qwen_like(false));
  auto ignoring = load(qwen_like(true));
  ASSERT_TRUE(plain && ignoring);
  EXPECT_EQ(plain->encode("xyz"), (std::vector<int32_t>{'x', 'y', 'z'}));
  EXPECT_EQ(ignoring->encode("xyz"), std::vector<int32_t>{id_of(*ignoring, "xyz")});
}

TEST(TokenizerJson, AddedTokensLongestMatchAndFlags) {
  auto t = load(qwen_like());
  ASSERT_TRUE(t);
  const int32_t hello = id_of(*t, "hello");
  EXPECT_EQ(t->encode("<|im_start|>hello<|im_end|>"), (std::vector<int32_t>{500, hello, 501}));
  EXPECT_EQ(t->encode("<a><b>"), std::vector<int32_t>{503});
  EXPECT_EQ(t->encode("<a><c>"), (std::vector<int32_t>{502, '<', 'c', '>'}));
  // lstrip eats the spaces before the token, rstrip those after it.
  EXPECT_EQ(t->encode("hello  <mask> x"), (std::vector<int32_t>{hello, 504, id_of(*t, "Ġ"), 'x'}));
  EXPECT_EQ(t->encode("hello<r>   x"), (std::vector<int32_t>{hello, 505, 'x'}));
  // single_word: only matched when not glued to word characters.
  const auto glued = t->encode("a<sw>b");
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 506), 0);
  const auto alone = t->encode("a <sw> b");
  EXPECT_EQ(std::count(alone.begin(), alone.end(), 506), 1);
  // A normalized added token matches after NFC: "e" + U+0301 normalizes to "é".
  EXPECT_EQ(t->encode("e\xCC\x81"), std::vector<int32_t>{507});
  EXPECT_TRUE(t->is_special(500));
  EXPECT_FALSE(t->is_special(502));
  EXPECT_FALSE(t->is_special(id_of(*t, "hello")));
  EXPECT_EQ(t->token_bytes(500), "<|im_start|>");
  EXPECT_EQ(t->decode({500, hello, 501}), "<|im_start|>hello<|im_end|>");
  EXPECT_EQ(t->decode({507}), "\xEF\xBF\xBD");  // as HF: 'é' is byte 0xE9 to ByteLevel
}

// Without the "é" added token: HF passes added tokens through the ByteLevel decoder too, which
// maps a non-ASCII added token's characters back to (invalid) bytes, so it would not round-trip.
json qwen_like_ascii_added() {
  json j = qwen_like();
  j["added_tokens"].erase(7);
  return j;
}

TEST(TokenizerJson, TokenBytesAndLossyDecode) {
  auto t = load(qwen_like_ascii_added());
  ASSERT_TRUE(t);
  // "é" is two byte tokens in this vocabulary; each alone is an incomplete sequence.
  const auto ids = t->encode("caf\xC3\xA9!");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(t->token_bytes(0xC3), "\xC3");
  EXPECT_EQ(t->token_bytes(id_of(*t, "Ġthe")), " the");
  EXPECT_EQ(t->decode({0xC3}), "\xEF\xBF\xBD");
  EXPECT_EQ(t->decode({0xC3, 0xA9}), "\xC3\xA9");
  EXPECT_EQ(t->decode(ids), "caf\xC3\xA9!");
}

TEST(TokenizerJson, InvalidUtf8IsReplaced) {
  auto t = load(qwen_like());
  ASSERT_TRUE(t);
  EXPECT_EQ(t->encode("\xFF\xFEhi\xC3"), t->encode("\xEF\xBF\xBD\xEF\xBF\xBDhi\xEF\xBF\xBD"));
  EXPECT_EQ(tok::utf8_lossy("a\xE2\x82z"), "a\xEF\xBF\xBDz");  // one U+FFFD per maximal subpart
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TokenizerJson, RoundTripRandomText) {
  auto t = load(qwen_like_ascii_added());
  ASSERT_TRUE(t);
  const std::vector<std::string> alphabet = {
      "a",         "h",    "e",  "l",  "o", " ",        "  ",           "\n",
      "\t",        "1",    "23", "'s", "!", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80",
      "e\xCC\x81", "\r\n", "T"};
  std::mt19937 rng(42);
  for (int iter = 0; iter < 500; ++iter) {
    std::string s;
    const int n = static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
    EXPECT_EQ(t->decode(t->encode(s)), tok::normalize(s, tok::NormForm::kNfc)) << s;
  }
}

TEST(TokenizerJson, ConcurrentEncodeIsConsistent) {
  auto t = load(qwen_like());
  ASSERT_TRUE(t);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    texts.push_back("hello the world " + std::to_string(i * 7919) + " <|im_end|> lll" +
                    std::string(static_cast<size_t>(i % 5), ' '));
  }
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& s : texts) expected.push_back(t->encode(s));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (t->encode(texts[i]) != expected[i]) ++failures;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// A Llama-2 style tokenizer.json: Prepend/Replace normalizer, byte fallback, unk.
json llama2_like(bool byte_fallback, bool fuse_unk) {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab[buf] = 3 + b;
  }
  vocab["\xE2\x96\x81"] = 259;
  vocab["a"] = 260;
  vocab["b"] = 261;
  vocab
      ["\xE2\x96\x81"
       "a"] = 262;
  vocab["ab"] = 263;
  vocab
      ["\xE2\x96\x81"
       "ab"] = 264;
  json j;
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
        {{"type", "ByteFallback"}},
        {{"type", "Fuse"}},
        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  // Merges given as pairs (the newer tokenizer.json form).
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", json::array({json::array({"\xE2\x96\x81", "a"}), json::array({"a", "b"}),
                                        json::array({"\xE2\x96\x81"
                                                     "a",
                                                     "b"})})},
                {"unk_token", "<unk>"},
                {"byte_fallback", byte_fallback},
                {"fuse_unk", fuse_unk}};
  j["added_tokens"] = {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}}}}}}};
  return j;
}

TEST(TokenizerJson, ByteFallbackAndMetaspaceDecoding) {
  auto t = load(llama2_like(true, true));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(t->encode("ab"), std::vector<int32_t>{264});
  EXPECT_EQ(t->encode("a \xC3\xA9"), (std::vector<int32_t>{262, 259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(t->decode({262, 259, 3 + 0xC3, 3 + 0xA9}), "a \xC3\xA9");
  EXPECT_EQ(t->decode({3 + 0xC3}), "\xEF\xBF\xBD");
  EXPECT_EQ(t->token_bytes(3 + 0xC3), "\xC3");
  EXPECT_EQ(t->token_bytes(262), " a");
  // Each segment between added tokens gets its own "▁" (Prepend runs per segment).
  EXPECT_EQ(t->encode("<s>ab"), (std::vector<int32_t>{1, 264}));
  EXPECT_EQ(t->encode("ab</s>ab"), (std::vector<int32_t>{264, 2, 264}));
  EXPECT_EQ(t->decode({1, 264}), "<s> ab");
  EXPECT_EQ(t->decode(t->encode(" a  b ")), " a  b ");
}

TEST(TokenizerJson, UnknownsFusedOrNot) {
  auto fused = load(llama2_like(false, true));
  auto unfused = load(llama2_like(false, false));
  ASSERT_TRUE(fused && unfused);
  EXPECT_EQ(fused->encode("a\xC3\xA9\xC3\xA9"), (std::vector<int32_t>{262, 0}));
  EXPECT_EQ(unfused->encode("a\xC3\xA9\xC3\xA9"), (std::vector<int32_t>{262, 0, 0}));
}

TEST(TokenizerJson, Errors) {
  auto bad = Tokenizer::load_json_string("{\"model\": ", "dir/tokenizer.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("dir/tokenizer.json: malformed JSON at byte"),
            std::string::npos)
      << bad.status().message();

  auto no_model = Tokenizer::load_json_string("{}", "t.json");
  ASSERT_FALSE(no_model.ok());
  EXPECT_NE(no_model.status().message().find("t.json: field 'model'"), std::string::npos);

  json j = qwen_like();
  j["model"]["merges"].push_back("h nothere");
  auto bad_merge = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(bad_merge.ok());
  EXPECT_NE(bad_merge.status().message().find("merges[7]"), std::string::npos)
      << bad_merge.status().message();

  j = qwen_like();
  j["model"]["vocab"]["bad"] = "x";
  auto bad_vocab = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(bad_vocab.ok());
  EXPECT_NE(bad_vocab.status().message().find("t.json: model.vocab['bad'] must be an integer"),
            std::string::npos)
      << bad_vocab.status().message();

  j = qwen_like();
  j["model"]["merges"][2] = json::array({"h"});
  auto short_pair = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(short_pair.ok());
  EXPECT_NE(short_pair.status().message().find("t.json: model.merges[2]"), std::string::npos)
      << short_pair.status().message();

  j = qwen_like();
  j["model"]["type"] = "WordPiece";
  auto wp = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(wp.ok());
  EXPECT_EQ(wp.status().code(), StatusCode::kUnimplemented);

  j = qwen_like();
  j["decoder"] = {{"type", "CTC"}};
  auto ctc = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(ctc.ok());
  EXPECT_NE(ctc.status().message().find("t.json: decoder"), std::string::npos);

  j = qwen_like();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}};
  auto regex = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(regex.ok());
  EXPECT_NE(regex.status().message().find("pretokenizers[0].pattern"), std::string::npos)
      << regex.status().message();

  j = qwen_like();
  j["added_tokens"][0]["lstrip"] = "yes";
  auto flag = Tokenizer::load_json_string(j.dump(), "t.json");
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.status().message().find("added_tokens[0]: field 'lstrip'"), std::string::npos);
}

TEST(LoadDir, MissingFolderAndFiles) {
  auto missing = Tokenizer::load_dir("/nonexistent/vila_model");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/vila_model"), std::string::npos);

  TempDir dir;
  dir.write("vocab.json", "{}");  // merges.txt missing: not a usable pair
  auto only_vocab = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(only_vocab.ok());
  EXPECT_EQ(only_vocab.status().code(), StatusCode::kNotFound);
}

TEST(LoadDir, TokenizerJsonWithConfig) {
  TempDir dir;
  dir.write("tokenizer.json", llama2_like(true, true).dump());
  dir.write("tokenizer_config.json",
            json({{"bos_token", {{"content", "<s>"}, {"lstrip", false}}},
                  {"eos_token", "</s>"},
                  {"pad_token", nullptr},
                  {"chat_template", "{{ messages }}"},
                  {"added_tokens_decoder",
                   {{"265", {{"content", "<image>"}, {"special", true}, {"normalized", false}}}}}})
                .dump());
  auto t = Tokenizer::load_dir(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ((*t)->bos_id, 1);
  EXPECT_EQ((*t)->eos_id, 2);
  EXPECT_FALSE((*t)->pad_id.has_value());
  EXPECT_TRUE((*t)->add_bos_token);  // from the TemplateProcessing post-processor
  EXPECT_EQ((*t)->chat_template_source, "{{ messages }}");
  EXPECT_EQ((*t)->n_tokens(), 266);
  EXPECT_EQ((*t)->encode("ab<image>ab"), (std::vector<int32_t>{264, 265, 264}));
  EXPECT_TRUE((*t)->is_special(265));
}

TEST(LoadDir, ConfigErrorsNameFileAndField) {
  TempDir dir;
  dir.write("tokenizer.json", qwen_like().dump());
  dir.write("tokenizer_config.json", "{\"eos_token\": 5}");
  auto t = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer_config.json: field 'eos_token'"),
            std::string::npos)
      << t.status().message();

  dir.write("tokenizer_config.json", "{\"eos_token\": \"<|nope|>\"}");
  t = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("field 'eos_token': '<|nope|>' is not a token"),
            std::string::npos)
      << t.status().message();

  dir.write("tokenizer_config.json", "{\"eos_token\": ");
  t = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer_config.json: malformed JSON"), std::string::npos);
}

TEST(LoadDir, SlowQwen2VocabAndMerges) {
  TempDir dir;
  json vocab = byte_vocab(kMerges, {});
  dir.write("vocab.json", vocab.dump());
  std::string merges = "#version: 0.2\n";
  for (const std::string& m : kMerges) merges += m + "\n";
  dir.write("merges.txt", merges);
  dir.write("added_tokens.json",
            json({{"<|endoftext|>", 300}, {"<|im_start|>", 301}, {"<|im_end|>", 302}}).dump());
  dir.write(
      "tokenizer_config.json",
      json({{"eos_token", "<|im_end|>"},
            {"pad_token", "<|endoftext|>"},
            {"bos_token", nullptr},
            {"chat_template", "{% for m in messages %}{% endfor %}"},
            {"additional_special_tokens", {"<|im_start|>", "<|im_end|>"}},
            {"added_tokens_decoder", {{"300", {{"content", "<|endoftext|>"}, {"special", true}}}}}})
          .dump());
  auto loaded = Tokenizer::load_dir(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& t = **loaded;
  EXPECT_EQ(t.kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_EQ(t.n_tokens(), 303);
  EXPECT_EQ(t.eos_id, 302);
  EXPECT_EQ(t.pad_id, 300);
  EXPECT_FALSE(t.bos_id.has_value());
  EXPECT_FALSE(t.add_bos_token);
  EXPECT_EQ(t.chat_template_source, "{% for m in messages %}{% endfor %}");
  EXPECT_TRUE(t.is_special(301));
  EXPECT_TRUE(t.is_special(300));
  const int32_t hello = id_of(t, "hello");
  EXPECT_EQ(t.encode("<|im_start|>hello the<|im_end|>"),
            (std::vector<int32_t>{301, hello, id_of(t, "Ġthe"), 302}));
  EXPECT_EQ(t.encode("e\xCC\x81"), t.encode("\xC3\xA9"));  // NFC first
  EXPECT_EQ(t.decode(t.encode("hello\n\n  world 42")), "hello\n\n  world 42");

  dir.write("merges.txt", "#version: 0.2\nh e x\n");
  auto bad = Tokenizer::load_dir(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("merges.txt: line 2"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace vila
