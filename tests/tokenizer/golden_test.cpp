// Golden tests: our ids must equal Hugging Face tokenizers' ids for real tokenizers (Qwen3,
// Llama-3, Llama-2) on >= 2,000 sentences, and decode(encode(text)) must give the text back.
//
// Inputs (skipped with a message when absent):
//   sentences:   $VILA_TOKENIZER_FIXTURES or tests/fixtures/tokenizer: sentences.jsonl
//                ({"text": ...} per line) and ref_<name>.jsonl ({"ids": [...]} per line, from
//                Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=False)).
//   tokenizers:  $VILA_NPM_TOKENIZERS, else <build>/npm-tokenizers, else
//   <repo>/build/npm-tokenizers
//                (<name>/tokenizer.json, written by scripts/export_npm_tokenizers.js).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>

#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace vila {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fixtures_dir() {
  const char* env = std::getenv("VILA_TOKENIZER_FIXTURES");
  if (env && *env) return env;
  return std::string(VILA_FIXTURES_DIR) + "/tokenizer";
}

// The folder holding <name>/tokenizer.json, or "" if none of the candidates has it.
std::string tokenizer_dir(const std::string& name) {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("VILA_NPM_TOKENIZERS"); env && *env) roots.push_back(env);
  roots.push_back(std::string(VILA_BUILD_DIR) + "/npm-tokenizers");
  roots.push_back(std::string(VILA_FIXTURES_DIR) + "/../../build/npm-tokenizers");
  for (const std::string& root : roots) {
    std::ifstream probe(root + "/" + name + "/tokenizer.json");
    if (probe) return root + "/" + name;
  }
  return "";
}

// Printable form of a text for failure messages (JSON string escaping).
std::string quoted(const std::string& s) {
  return json(tok::utf8_lossy(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ids_str(const std::vector<int32_t>& ids) { return json(ids).dump(); }

struct Golden {
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> refs;
  // HF decode(ids, skip_special_tokens=False) of the reference ids, when the file has "decoded".
  std::vector<std::optional<std::string>> decoded;
};

// Loads sentences.jsonl and ref_<name>.jsonl; a non-empty `skip` says why not.
Golden load_golden(const std::string& name, std::string* skip) {
  Golden g;
  const std::string dir = fixtures_dir();
  std::vector<json> sentences, refs;
  if (!testing::read_jsonl(dir + "/sentences.jsonl", &sentences) ||
      !testing::read_jsonl(dir + "/ref_" + name + ".jsonl", &refs)) {
    *skip = "golden fixtures " + dir + "/{sentences,ref_" + name +
            "}.jsonl not found or malformed (set VILA_TOKENIZER_FIXTURES)";
    return g;
  }
  if (sentences.size() != refs.size()) {
    ADD_FAILURE() << "sentences.jsonl has " << sentences.size() << " lines but ref_" << name
                  << ".jsonl has " << refs.size();
    return g;
  }
  for (size_t i = 0; i < sentences.size(); ++i) {
    if (!sentences[i].contains("text") || !sentences[i]["text"].is_string() ||
        !refs[i].contains("ids") || !refs[i]["ids"].is_array()) {
      ADD_FAILURE() << "line " << i + 1 << ": expected {\"text\": ...} and {\"ids\": [...]}";
      return Golden{};
    }
    g.texts.push_back(sentences[i]["text"].get<std::string>());
    g.refs.push_back(refs[i]["ids"].get<std::vector<int32_t>>());
    auto dec = refs[i].find("decoded");
    g.decoded.push_back(dec != refs[i].end() && dec->is_string()
                            ? std::optional<std::string>(dec->get<std::string>())
                            : std::nullopt);
  }
  return g;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, IdsMatchHuggingFaceAndRoundTrip) {
  const std::string name = GetParam();
  const std::string dir = tokenizer_dir(name);
  if (dir.empty()) {
    GTEST_SKIP() << name << "/tokenizer.json not found (set VILA_NPM_TOKENIZERS or run "
                 << "scripts/export_npm_tokenizers.js <build>/npm-tokenizers)";
  }
  std::string skip;
  Golden g = load_golden(name, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_FALSE(g.texts.empty());

  auto t0 = Clock::now();
  auto loaded = Tokenizer::load_dir(dir);
  const double load_s = seconds_since(t0);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& tok = **loaded;

  t0 = Clock::now();
  std::vector<std::vector<int32_t>> ours;
  ours.reserve(g.texts.size());
  for (const std::string& text : g.texts) ours.push_back(tok.encode(text));
  const double encode_s = seconds_since(t0);
  std::printf("[ %s ] load %.3f s, encode %zu texts %.3f s\n", name.c_str(), load_s, g.texts.size(),
              encode_s);

  size_t mismatches = 0;
  for (size_t i = 0; i < g.texts.size(); ++i) {
    if (ours[i] == g.refs[i]) continue;
    if (++mismatches > 5) continue;
    size_t k = 0;
    while (k < ours[i].size() && k < g.refs[i].size() && ours[i][k] == g.refs[i][k]) ++k;
    std::string ours_piece = k < ours[i].size() ? tok.id_to_piece(ours[i][k]) : "<end>";
    std::string ref_piece = k < g.refs[i].size() ? tok.id_to_piece(g.refs[i][k]) : "<end>";
    ADD_FAILURE() << name << " line " << i + 1 << ": " << quoted(g.texts[i])
                  << "\n  ours: " << ids_str(ours[i]) << "\n  ref:  " << ids_str(g.refs[i])
                  << "\n  first difference at " << k << ": ours " << quoted(ours_piece)
                  << " vs ref " << quoted(ref_piece);
  }
  EXPECT_EQ(mismatches, 0u) << "of " << g.texts.size() << " texts differ";

  // Round trip. Byte-level BPE: exact (after NFC for Qwen). Llama-2 (Prepend + byte fallback):
  // exact as long as no added token sits inside the text.
  size_t round_trip_failures = 0;
  for (size_t i = 0; i < g.texts.size(); ++i) {
    const std::string& text = g.texts[i];
    if (tok.kind() != TokenizerKind::kByteLevelBpe) {
      bool has_added = false;
      for (int32_t id : ours[i]) has_added = has_added || tok.is_special(id);
      if (has_added) continue;
    }
    const std::string expected = name == "qwen3" ? tok::normalize(text, tok::NormForm::kNfc) : text;
    const std::string back = tok.decode(ours[i]);
    if (back == expected) continue;
    if (++round_trip_failures <= 5) {
      ADD_FAILURE() << name << " line " << i + 1
                    << " does not round-trip:\n  text: " << quoted(expected)
                    << "\n  back: " << quoted(back);
    }
  }
  EXPECT_EQ(round_trip_failures, 0u);

  // decode() of the reference ids equals HF's decode, where the fixtures have it.
  size_t decode_failures = 0;
  for (size_t i = 0; i < g.texts.size(); ++i) {
    if (!g.decoded[i]) continue;
    const std::string ours_text = tok.decode(g.refs[i]);
    if (ours_text == *g.decoded[i]) continue;
    if (++decode_failures <= 5) {
      ADD_FAILURE() << name << " line " << i + 1
                    << ": decode differs from HF:\n  ours: " << quoted(ours_text)
                    << "\n  HF:   " << quoted(*g.decoded[i]);
    }
  }
  EXPECT_EQ(decode_failures, 0u);

  // token_bytes of the ids concatenate to the decoded bytes (byte-level BPE).
  if (tok.kind() == TokenizerKind::kByteLevelBpe) {
    for (size_t i = 0; i < g.texts.size(); ++i) {
      std::string joined;
      for (int32_t id : ours[i]) joined += tok.token_bytes(id);
      EXPECT_EQ(joined, tok.decode(ours[i])) << "line " << i + 1;
      if (joined != tok.decode(ours[i])) break;
    }
  }

#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__)
  if (name == "qwen3" && g.texts.size() <= 5000) {
    EXPECT_LT(encode_s, 1.0) << "encoding is too slow";
    EXPECT_LT(load_s, 3.0) << "loading is too slow";
  }
#endif
}

INSTANTIATE_TEST_SUITE_P(Real, GoldenTest, ::testing::Values("qwen3", "llama3", "llama2"),
                         [](const auto& info) { return info.param; });

// The slow path (vocab.json + merges.txt, as HF's Qwen2Tokenizer) built from the real Qwen3
// vocabulary must agree with the fast tokenizer.json path.
TEST(GoldenSlowQwen2, MatchesFastTokenizer) {
  const std::string dir = tokenizer_dir("qwen3");
  if (dir.empty()) GTEST_SKIP() << "qwen3/tokenizer.json not found";
  std::string text;
  ASSERT_TRUE(testing::read_file(dir + "/tokenizer.json", &text));
  json j = json::parse(text);
  testing::TempDir tmp;
  tmp.write("vocab.json", j["model"]["vocab"].dump());
  std::string merges = "#version: 0.2\n";
  for (const json& m : j["model"]["merges"]) {
    merges += m.is_string() ? m.get<std::string>()
                            : m[0].get<std::string>() + " " + m[1].get<std::string>();
    merges += "\n";
  }
  tmp.write("merges.txt", merges);
  json added_tokens = json::object();
  for (const json& a : j["added_tokens"]) added_tokens[a["content"].get<std::string>()] = a["id"];
  tmp.write("added_tokens.json", added_tokens.dump());

  auto fast = Tokenizer::load_dir(dir);
  auto slow = Tokenizer::load_dir(tmp.path());
  ASSERT_TRUE(fast.ok()) << fast.status().to_string();
  ASSERT_TRUE(slow.ok()) << slow.status().to_string();

  std::vector<std::string> texts = {"Hello world", "e\xCC\x81t\xC3\xA9 caf\xC3\xA9",
                                    "<|im_start|>user\nHi!<|im_end|>\n", "  x  \n\n 123456"};
  std::string skip;
  Golden g = load_golden("qwen3", &skip);
  texts.insert(texts.end(), g.texts.begin(), g.texts.end());
  size_t diffs = 0;
  for (const std::string& s : texts) {
    if ((*fast)->encode(s) == (*slow)->encode(s)) continue;
    if (++diffs <= 5) ADD_FAILURE() << "slow and fast differ on " << quoted(s);
  }
  EXPECT_EQ(diffs, 0u);
}

}  // namespace
}  // namespace vila
