// The normalizer, pre-tokenizer and decoder stages of an HF tokenizer.json, flattened to lists of
// steps (a Sequence becomes its members in order).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/pattern.h"

namespace vila::tok {

struct NormalizerStep {
  enum Type { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kPrepend, kReplace, kStrip } type = kNfc;
  std::string text;                        // kPrepend: the prefix; kReplace: the replacement
  std::shared_ptr<const Pattern> pattern;  // kReplace
  bool left = false, right = false;        // kStrip
};

struct Normalizer {
  std::vector<NormalizerStep> steps;
  bool empty() const { return steps.empty(); }
  std::string apply(std::string_view text) const;
};

// A pre-token: the text and whether it starts at offset 0 of the original input (Metaspace's
// prepend_scheme "first" looks at that).
struct PreToken {
  std::string text;
  bool at_origin = false;
};

struct PreTokenizerStep {
  enum Type { kSplit, kByteLevel, kMetaspace, kDigits, kWhitespaceSplit } type = kSplit;
  std::shared_ptr<const Pattern> pattern;  // kSplit; kByteLevel with use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;                               // kByteLevel
  std::string replacement;                                     // kMetaspace ("▁")
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;  // kMetaspace
  bool split = true;                                           // kMetaspace
  bool individual_digits = false;                              // kDigits
};

struct PreTokenizer {
  std::vector<PreTokenizerStep> steps;
  bool byte_level = false;  // some step maps bytes to the GPT-2 alphabet
  // Splits one normalized segment; the byte-level mapping (if any) is applied to each piece.
  void apply(std::string text, bool at_origin, std::vector<PreToken>* out) const;
};

struct DecoderStep {
  enum Type { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } type = kByteLevel;
  std::shared_ptr<const Pattern> pattern;  // kReplace
  std::string text;  // kReplace: the replacement; kStrip: the character; kMetaspace: replacement
  size_t start = 0, stop = 0;  // kStrip
  bool prepend = true;         // kMetaspace: prepend_scheme != never
};

struct Decoder {
  std::vector<DecoderStep> steps;
  bool has_byte_level() const;
  // HF Decoder::decode of a token list (lossy UTF-8 at the end, as HF returns a String).
  std::string decode(std::vector<std::string> tokens) const;
  // The bytes of one token: the steps that map characters (ByteLevel, Replace, ByteFallback,
  // Metaspace without its first-token rule), no Strip, no lossy conversion.
  std::string token_bytes(std::string_view token) const;
};

// Parsers for the tokenizer.json sections; `where` names the file and field for errors. Unknown
// component types give Unimplemented.
StatusOr<Normalizer> parse_normalizer(const nlohmann::json& j, const std::string& where);
StatusOr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& j, const std::string& where);
StatusOr<Decoder> parse_decoder(const nlohmann::json& j, const std::string& where);
// {"String": s} or {"Regex": r}.
StatusOr<std::shared_ptr<const Pattern>> parse_pattern(const nlohmann::json& j,
                                                       const std::string& where);

}  // namespace vila::tok
