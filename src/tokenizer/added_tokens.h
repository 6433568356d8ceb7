// Added tokens (<|im_start|>, <image>, ...) and HF's rule for cutting them out of the raw text.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/pattern.h"

namespace vila::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// Parses one HF AddedToken object ({"content": ..., "lstrip": ..., ...}); `id` from the caller.
// `where` names the file and field for errors.
StatusOr<AddedToken> parse_added_token(const nlohmann::json& obj, int32_t id,
                                       const std::string& where);

// One piece of a split: an added token (id >= 0) or plain text to tokenize further (id == -1).
struct Segment {
  Span span;
  int32_t id = -1;
};

// Matches a set of added tokens like HF's AddedVocabulary (aho-corasick, leftmost-longest):
// scanning left to right, the first position where some token starts wins, and the longest token
// starting there is taken. single_word matches with a word character on either side are skipped;
// lstrip / rstrip widen the match over the whitespace before / after it.
class AddedTokenMatcher {
 public:
  void add(const std::string& content, int32_t id, bool lstrip, bool rstrip, bool single_word);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` (valid UTF-8) into segments covering all of it, in order. Empty text gives one
  // empty plain segment.
  std::vector<Segment> split(std::string_view text) const;

 private:
  struct Entry {
    int32_t id;
    size_t length;
    bool lstrip, rstrip, single_word;
  };
  // Longest token starting at text[pos]: index into tokens_, or -1.
  int longest_at(std::string_view text, size_t pos) const;

  std::vector<Entry> tokens_;
  // Byte trie: edges keyed by node * 256 + byte; terminal[node] = index into tokens_ or -1.
  std::unordered_map<uint64_t, uint32_t> edges_;
  std::vector<int> terminal_{-1};
  bool first_byte_[256] = {};
};

}  // namespace vila::tok
