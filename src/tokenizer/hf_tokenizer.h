// Tokenizers built from Hugging Face files: tokenizer.json (fast tokenizers: BPE model with its
// normalizer, pre-tokenizer and decoder) and vocab.json + merges.txt (the slow Qwen2Tokenizer).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/hf_pipeline.h"
#include "tokenizer/json_stream.h"
#include "tokenizer/tokenizer.h"

namespace vila::tok {

// Parses JSON text; InvalidArgument "<name>: malformed JSON at byte N: ..." on error.
StatusOr<nlohmann::json> parse_json_text(std::string_view text, const std::string& name);
// Reads and parses a file: NotFound "<path>: no such file" or the parse error.
StatusOr<nlohmann::json> read_json_file(const std::string& path);

class HfTokenizer : public Tokenizer {
 public:
  // From the text of a tokenizer.json; `name` (the path) prefixes errors.
  static StatusOr<std::unique_ptr<HfTokenizer>> from_tokenizer_json(std::string_view text,
                                                                    const std::string& name);
  // HF's slow Qwen2Tokenizer: NFC on the whole text, then added tokens, then the Qwen2 regex and
  // byte-level BPE. `vocab_name` / `merges_name` prefix errors.
  static StatusOr<std::unique_ptr<HfTokenizer>> from_vocab_merges(const nlohmann::json& vocab,
                                                                  const std::string& vocab_name,
                                                                  std::string_view merges_txt,
                                                                  const std::string& merges_name);

  // Adds tokens (from tokenizer_config.json / added_tokens.json) unless their id or content is
  // already an added token; a content already in the base vocabulary keeps matching as a whole.
  void add_tokens(const std::vector<AddedToken>& tokens);

  TokenizerKind kind() const override { return kind_; }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string token_bytes(int32_t id) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string id_to_piece(int32_t id) const override;
  std::optional<int32_t> piece_to_id(std::string_view piece) const override;
  int32_t n_tokens() const override { return n_tokens_; }
  bool is_special(int32_t id) const override;

  // The first special token of a TemplateProcessing post-processor's "single" template (e.g.
  // "<s>" for Llama-2): HF's fast tokenizers add it when add_special_tokens is true.
  const std::string& post_processor_prefix() const { return post_prefix_; }

 private:
  HfTokenizer() = default;
  void rebuild_matchers();
  void encode_plain(std::string_view text, bool at_origin, std::vector<int32_t>* ids) const;

  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  BpeModel model_;
  Decoder decoder_;
  TokenizerKind kind_ = TokenizerKind::kByteLevelBpe;
  bool normalize_first_ = false;  // slow tokenizers normalize before matching added tokens

  std::vector<AddedToken> added_;
  std::unordered_map<int32_t, size_t> added_by_id_;
  VocabMap added_by_content_;
  AddedTokenMatcher raw_matcher_;         // normalized == false (or all, if normalize_first_)
  AddedTokenMatcher normalized_matcher_;  // normalized == true, matched after normalization
  int32_t n_tokens_ = 0;
  std::string post_prefix_;
};

}  // namespace vila::tok
