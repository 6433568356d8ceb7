// Byte-level BPE training (GPT-2 / Qwen2 style), writing a tokenizer.json that this repo's
// Tokenizer and Hugging Face `tokenizers` load (the schema of Qwen's own tokenizer.json).
//
// Pipeline, the same at training and encoding time: special tokens are cut out of the raw text
// first (never split, never merged into anything); the rest is NFC-normalised, split by Qwen2's
// pre-tokenisation regex (contractions, letter runs with one leading non-letter, single digits,
// punctuation runs, newlines, spaces) and mapped to GPT-2's byte alphabet (each byte one printable
// character). Each distinct pre-token ("word") is counted. Decoding gives back the text exactly
// when it was already in NFC (as for Qwen's own tokenizer); other text comes back as its NFC form.
//
// Training: the initial vocabulary is the 256 byte symbols, ids 0..255 in GPT-2's
// bytes_to_unicode order (id 0 = "!", as Qwen2 / GPT-2). Then, repeatedly, the adjacent symbol
// pair with the highest count (summed over words, weighted by word frequency) is merged into a
// new symbol, applied left to right without overlaps in every word that contains it. Ties are
// broken by the smaller (left id, right id) pair, as HF's BpeTrainer does, so the result depends
// on the text only (not on hash order, threads or platform). A merge whose string already is a
// token reuses its id. Training stops when the vocabulary (256 + merged tokens + special tokens)
// reaches `vocab_size`, or when the best pair occurs fewer than `min_frequency` times (the
// result then says the target was not reached). Special tokens get the ids after the BPE
// vocabulary, in the given order, as Qwen's <|endoftext|>, <|im_start|>, ... do.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/hf_pipeline.h"

namespace vila::tok {

// Number of byte symbols every byte-level vocabulary starts with.
constexpr int32_t kByteSymbols = 256;

struct BpeTrainerOptions {
  // Total ids of the result: byte symbols + merged tokens + special tokens.
  int32_t vocab_size = 0;
  // Atomic tokens, e.g. <|endoftext|>, <|im_start|>, <|im_end|>, <image>.
  std::vector<std::string> special_tokens;
  // A pair seen fewer times than this is never merged (HF's min_frequency); at least 1.
  int64_t min_frequency = 2;
};

struct BpeTrainResult {
  std::vector<std::string> vocab;                           // id -> byte-level string
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<std::string> special_tokens;                  // id vocab.size() + i
  int64_t words = 0;                                        // pre-tokens counted
  int64_t unique_words = 0;                                 // distinct pre-tokens
  bool reached_vocab_size = false;

  int32_t n_tokens() const { return static_cast<int32_t>(vocab.size() + special_tokens.size()); }
};

class BpeTrainer {
 public:
  // InvalidArgument naming the value: vocab_size below 256 + number of special tokens, an empty,
  // repeated or non-UTF-8 special token, min_frequency < 1.
  static StatusOr<BpeTrainer> create(BpeTrainerOptions options);

  // Counts the words of one text (any bytes: invalid UTF-8 becomes U+FFFD, as at encode time).
  void add_text(std::string_view input);
  int64_t words() const { return words_; }

  // Runs the merges. InvalidArgument if no text was added.
  StatusOr<BpeTrainResult> train() const;

 private:
  BpeTrainer() = default;

  BpeTrainerOptions options_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  AddedTokenMatcher specials_;
  std::unordered_map<std::string, int64_t> word_counts_;
  int64_t words_ = 0;
};

// The tokenizer.json text (pretty-printed, keys in Qwen's order, deterministic bytes).
std::string bpe_tokenizer_json(const BpeTrainResult& result);
// tokenizer_config.json: special tokens as added_tokens_decoder, eos <|im_end|> (else
// <|endoftext|>), pad <|endoftext|>, a ChatML chat_template when <|im_start|> and <|im_end|>
// are special tokens.
std::string bpe_tokenizer_config_json(const BpeTrainResult& result);

// Writes tokenizer.json, tokenizer_config.json, vocab.json and merges.txt into `dir` (created if
// missing), each through a temporary file and a rename.
Status write_bpe_tokenizer(const BpeTrainResult& result, const std::string& dir);

}  // namespace vila::tok
