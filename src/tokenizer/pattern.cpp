#include "tokenizer/pattern.h"

#include <algorithm>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/utf8.h"

namespace vila::tok {

StatusOr<std::shared_ptr<const Pattern>> Pattern::regex(const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return invalid_argument("bad regex '" + pattern + "' at offset " + std::to_string(err_offset) +
                            ": " + reinterpret_cast<const char*>(buf));
  }
  // JIT is an optimisation only: if it is unavailable pcre2_match interprets.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  std::shared_ptr<Pattern> p(new Pattern());
  p->code_ = code;
  return std::shared_ptr<const Pattern>(std::move(p));
}

std::shared_ptr<const Pattern> Pattern::literal(const std::string& text) {
  std::shared_ptr<Pattern> p(new Pattern());
  p->literal_ = text;
  return p;
}

Pattern::~Pattern() {
  if (code_ != nullptr) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

void Pattern::find_all(std::string_view text, std::vector<Span>* out) const {
  if (code_ == nullptr) {
    if (literal_.empty()) return;
    size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out->emplace_back(pos, pos + literal_.size());
      pos += literal_.size();
    }
    return;
  }
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  if (md == nullptr) return;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                       nullptr);
    }
    if (rc < 0) break;  // no match, or a resource limit: the rest stays unmatched
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    if (start > text.size() || end > text.size() || end < start) break;  // \K oddities
    out->emplace_back(start, end);
    if (end > start) {
      pos = end;
    } else {
      if (end >= text.size()) break;
      pos = end + utf8_len(static_cast<unsigned char>(text[end]));
    }
  }
  pcre2_match_data_free(md);
}

std::vector<Span> split_by_matches(size_t text_size, const std::vector<Span>& matches,
                                   SplitBehavior behavior, bool invert) {
  // The whole text as alternating (span, is_match) pieces, like HF Pattern::find_matches.
  std::vector<std::pair<Span, bool>> pieces;
  pieces.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (const Span& m : matches) {
    if (m.first > prev) pieces.push_back({{prev, m.first}, invert});
    pieces.push_back({m, !invert});
    prev = m.second;
  }
  if (prev < text_size || pieces.empty()) pieces.push_back({{prev, text_size}, invert});

  std::vector<Span> out;
  out.reserve(pieces.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& [span, is_match] : pieces) out.push_back(span);
      break;
    case SplitBehavior::kRemoved:
      for (const auto& [span, is_match] : pieces) {
        if (!is_match) out.push_back(span);
      }
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& [span, is_match] : pieces) {
        if (is_match && !previous_match && !out.empty()) {
          out.back().second = span.second;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        const auto& [span, is_match] = *it;
        if (is_match && !previous_match && !out.empty()) {
          out.back().first = span.first;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const auto& [span, is_match] : pieces) {
        if (is_match == previous_match && !out.empty()) {
          out.back().second = span.second;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      break;
    }
  }
  std::erase_if(out, [](const Span& s) { return s.first >= s.second; });
  return out;
}

}  // namespace vila::tok
