// The BPE model of HF tokenizers: vocabulary, ranked merges, byte fallback, unk handling.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace vila::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using VocabMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  BpeModel() = default;
  BpeModel(BpeModel&& other) noexcept
      : vocab_(std::move(other.vocab_)),
        pieces_(std::move(other.pieces_)),
        merges_(std::move(other.merges_)),
        opts_(std::move(other.opts_)),
        unk_id_(other.unk_id_) {}
  BpeModel& operator=(BpeModel&& other) noexcept {
    vocab_ = std::move(other.vocab_);
    pieces_ = std::move(other.pieces_);
    merges_ = std::move(other.merges_);
    opts_ = std::move(other.opts_);
    unk_id_ = other.unk_id_;
    cache_.clear();
    return *this;
  }

  // `merges` are pairs of vocabulary strings, best first. Errors (a merge naming a string that is
  // not in the vocabulary, ...) are prefixed with `where`.
  static StatusOr<BpeModel> build(VocabMap vocab,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  BpeOptions opts, const std::string& where);

  // Appends the ids of one pre-token (HF Model::tokenize). Thread-safe.
  void tokenize(std::string_view word, std::vector<int32_t>* out) const;

  const VocabMap& vocab() const { return vocab_; }
  // Vocabulary string of an id ("" if none).
  const std::string& piece(int32_t id) const;
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> unk_id() const { return unk_id_; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>* out) const;

  VocabMap vocab_;
  std::vector<std::string> pieces_;  // id -> string (ids may have gaps)
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  BpeOptions opts_;
  std::optional<int32_t> unk_id_;

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace vila::tok
