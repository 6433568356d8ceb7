// libFuzzer target: encodes and decodes arbitrary bytes with three small tokenizers built once
// from tokenizer.json text (through Tokenizer::load_json_string):
//   A: Llama-3 style (Split regex + ByteLevel, ignore_merges, ASCII added tokens) where
//      decode(encode(x)) must equal x with invalid UTF-8 replaced by U+FFFD;
//   B: Qwen2 style (NFC, lstrip / rstrip / single_word / normalized added tokens);
//   C: Llama-2 style (Prepend + Replace normalizer, byte fallback, unk).
// Invalid UTF-8 input is accepted: encode() replaces ill-formed sequences with U+FFFD first.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using nlohmann::json;

constexpr const char* kQwenRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581

json added(int id, const char* content, bool special, bool lstrip = false, bool rstrip = false,
           bool single_word = false, bool normalized = false) {
  return {{"id", id},
          {"content", content},
          {"special", special},
          {"lstrip", lstrip},
          {"rstrip", rstrip},
          {"single_word", single_word},
          {"normalized", normalized}};
}

json byte_level_json(const char* regex, bool nfc, bool ignore_merges, json added_tokens) {
  const std::vector<std::string> merges = {"Ġ t", "h e",   "Ġt he", "i n", "Ġ a",  "e r",
                                           "Ġ Ġ", "ĠĠ ĠĠ", "l l",   "1 2", "12 3", "ä ¸"};
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[vila::tok::byte_to_unicode(static_cast<uint8_t>(b))] = b;
  int next = 256;
  for (const std::string& m : merges) {
    const size_t sp = m.find(' ');
    const std::string merged = m.substr(0, sp) + m.substr(sp + 1);
    if (!vocab.contains(merged)) vocab[merged] = next++;
  }
  vocab["Ġhello"] = next++;  // reachable only through ignore_merges
  json j;
  j["normalizer"] = nfc ? json{{"type", "NFC"}} : json(nullptr);
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {
      {"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"ignore_merges", ignore_merges}};
  j["added_tokens"] = std::move(added_tokens);
  return j;
}

json llama2_json() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    vocab[buf] = 3 + b;
  }
  int next = 259;
  for (const char* p : {kSpace, "a", "b", "t", "h", "e"}) vocab[p] = next++;
  vocab[std::string(kSpace) + "t"] = next++;
  vocab["he"] = next++;
  vocab[std::string(kSpace) + "the"] = next++;
  json j;
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", kSpace}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}}}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                    {{"type", "ByteFallback"}},
                    {{"type", "Fuse"}},
                    {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", {std::string(kSpace) + " t", "h e", std::string(kSpace) + "t he"}},
                {"unk_token", "<unk>"},
                {"byte_fallback", true},
                {"fuse_unk", true}};
  j["added_tokens"] = {added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true)};
  return j;
}

struct Tokenizers {
  std::unique_ptr<vila::Tokenizer> a, b, c;
};

std::unique_ptr<vila::Tokenizer> must_load(const json& j) {
  auto t = vila::Tokenizer::load_json_string(j.dump(), "fuzz.json");
  if (!t.ok()) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", t.status().to_string().c_str());
    __builtin_trap();
  }
  return std::move(t).value();
}

const Tokenizers& tokenizers() {
  static const Tokenizers* t = [] {
    auto* out = new Tokenizers();
    out->a = must_load(
        byte_level_json(kLlama3Regex, /*nfc=*/false, /*ignore_merges=*/true,
                        {added(300, "<|begin_of_text|>", true), added(301, "<|eot_id|>", true),
                         added(302, "<|eot_id|><|x|>", false), added(303, "<think>", false)}));
    out->b = must_load(byte_level_json(
        kQwenRegex, /*nfc=*/true, /*ignore_merges=*/false,
        {added(300, "<|im_start|>", true), added(301, "<|im_end|>", true),
         added(302, "<mask>", true, /*lstrip=*/true),
         added(303, "<r>", true, false, /*rstrip=*/true),
         added(304, "<sw>", false, false, false, /*single_word=*/true),
         added(305, "\xC3\xA9t\xC3\xA9", false, false, false, false, /*normalized=*/true)}));
    out->c = must_load(llama2_json());
    return out;
  }();
  return *t;
}

void check(const vila::Tokenizer& t, std::string_view text, bool round_trip) {
  const std::vector<int32_t> ids = t.encode(text);
  for (int32_t id : ids) {
    if (id < 0 || id >= t.n_tokens()) __builtin_trap();
    (void)t.token_bytes(id);
    (void)t.id_to_piece(id);
  }
  const std::string decoded = t.decode(ids);
  if (!vila::tok::utf8_valid(decoded)) __builtin_trap();
  if (round_trip && decoded != vila::tok::utf8_lossy(text)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;  // long inputs add time, not coverage
  const Tokenizers& t = tokenizers();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(*t.a, text, /*round_trip=*/true);
  check(*t.b, text, /*round_trip=*/false);
  check(*t.c, text, /*round_trip=*/false);
  return 0;
}
