// Patterns of tokenizer.json ({"String": ...} or {"Regex": ...}) and HF's split behaviours.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace vila::tok {

using Span = std::pair<size_t, size_t>;  // [begin, end) byte offsets

// A literal string or a PCRE2 regex compiled with UTF + UCP (so \s, \w, \d and \p{..} are Unicode
// aware, like Oniguruma in HF tokenizers) and JIT. Immutable and safe to share between threads.
class Pattern {
 public:
  static StatusOr<std::shared_ptr<const Pattern>> regex(const std::string& pattern);
  static std::shared_ptr<const Pattern> literal(const std::string& text);
  ~Pattern();
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;

  // Appends the non-overlapping matches in `text` (valid UTF-8), left to right. An empty regex
  // match advances one character. If PCRE2 fails (e.g. a resource limit on pathological input)
  // the search stops there, so the rest of the text stays unmatched rather than crashing.
  void find_all(std::string_view text, std::vector<Span>* out) const;

 private:
  Pattern() = default;
  std::string literal_;
  void* code_ = nullptr;  // pcre2_code_8*
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// HF NormalizedString::split: the pieces of `text` cut at `matches` (sorted, non-overlapping)
// with the delimiter behaviour; `invert` swaps the roles of matches and gaps. Empty pieces are
// dropped.
std::vector<Span> split_by_matches(size_t text_size, const std::vector<Span>& matches,
                                   SplitBehavior behavior, bool invert);

}  // namespace vila::tok
