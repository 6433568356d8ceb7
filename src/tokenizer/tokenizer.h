// Tokenizer interface shared by byte-level BPE (Qwen2, Llama-3) and SentencePiece (Llama-2).
//
// encode() matches added/special tokens (<|im_start|>, <image>, ...) in the raw text first and
// tokenizes the rest; it never adds BOS/EOS. Token ids equal Hugging Face tokenizers' ids.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vila {

enum class TokenizerKind { kByteLevelBpe, kSentencePiece };

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads from a folder: tokenizer.json, else vocab.json + merges.txt (+ added_tokens.json /
  // tokenizer_config.json), else tokenizer.model (SentencePiece).
  static StatusOr<std::unique_ptr<Tokenizer>> load_dir(const std::string& dir);
  // Builds a tokenizer from the text of a tokenizer.json (no tokenizer_config.json: bos/eos/pad
  // stay unset). `name` prefixes error messages. Used by the fuzzer and tests.
  static StatusOr<std::unique_ptr<Tokenizer>> load_json_string(
      std::string_view json, const std::string& name = "tokenizer.json");

  virtual TokenizerKind kind() const = 0;
  // Thread-safe. Input that is not valid UTF-8 is first made valid by replacing each ill-formed
  // sequence with U+FFFD (HF only ever sees a valid str), so any bytes can be encoded.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // The bytes a token stands for (byte-level BPE: the decoded bytes; SentencePiece: the piece with
  // U+2581 as a space and <0xNN> byte pieces as raw bytes). May be an incomplete UTF-8 sequence.
  virtual std::string token_bytes(int32_t id) const = 0;
  // Whole-sequence decode as HF's decode(ids, skip_special_tokens=false) (SentencePiece drops the
  // leading space of the first piece).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The raw vocabulary string of a token ("Ġthe", "▁the", "<|im_end|>"); empty if out of range.
  virtual std::string id_to_piece(int32_t id) const = 0;
  virtual std::optional<int32_t> piece_to_id(std::string_view piece) const = 0;
  // Number of ids (base vocabulary + added tokens); ids are in [0, n_tokens()).
  virtual int32_t n_tokens() const = 0;
  virtual bool is_special(int32_t id) const = 0;

  // From tokenizer_config.json / special_tokens_map.json, when present.
  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  std::optional<int32_t> pad_id;
  // tokenizer_config.json "chat_template" (used to pick our template), may be empty.
  std::string chat_template_source;
  // tokenizer_config.json "add_bos_token" (Llama: true).
  bool add_bos_token = false;
};

}  // namespace vila
