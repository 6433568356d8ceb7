#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace vila::tok {

StatusOr<AddedToken> parse_added_token(const nlohmann::json& obj, int32_t id,
                                       const std::string& where) {
  AddedToken t;
  t.id = id;
  if (obj.is_string()) {  // added_tokens.json style / plain string in a config
    t.content = obj.get<std::string>();
    return t;
  }
  if (!obj.is_object()) return invalid_argument(where + " must be an object");
  auto it = obj.find("content");
  if (it == obj.end() || !it->is_string()) {
    return invalid_argument(where + ": field 'content' missing or not a string");
  }
  t.content = it->get<std::string>();
  if (t.content.empty()) return invalid_argument(where + ": field 'content' is empty");
  auto get_bool = [&](const char* key, bool fallback, bool* out) -> Status {
    auto f = obj.find(key);
    if (f == obj.end() || f->is_null()) {
      *out = fallback;
      return ok_status();
    }
    if (!f->is_boolean()) return invalid_argument(where + ": field '" + key + "' must be a bool");
    *out = f->get<bool>();
    return ok_status();
  };
  VILA_RETURN_IF_ERROR(get_bool("special", false, &t.special));
  VILA_RETURN_IF_ERROR(get_bool("lstrip", false, &t.lstrip));
  VILA_RETURN_IF_ERROR(get_bool("rstrip", false, &t.rstrip));
  VILA_RETURN_IF_ERROR(get_bool("single_word", false, &t.single_word));
  // HF AddedToken: normalized defaults to !special.
  VILA_RETURN_IF_ERROR(get_bool("normalized", !t.special, &t.normalized));
  return t;
}

void AddedTokenMatcher::add(const std::string& content, int32_t id, bool lstrip, bool rstrip,
                            bool single_word) {
  if (content.empty()) return;
  uint32_t node = 0;
  for (unsigned char c : content) {
    const uint64_t key = static_cast<uint64_t>(node) * 256 + c;
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      const auto child = static_cast<uint32_t>(terminal_.size());
      terminal_.push_back(-1);
      edges_.emplace(key, child);
      node = child;
    } else {
      node = it->second;
    }
  }
  first_byte_[static_cast<unsigned char>(content[0])] = true;
  if (terminal_[node] >= 0) {  // same content twice: the later definition wins
    tokens_[terminal_[node]] = {id, content.size(), lstrip, rstrip, single_word};
    return;
  }
  terminal_[node] = static_cast<int>(tokens_.size());
  tokens_.push_back({id, content.size(), lstrip, rstrip, single_word});
}

int AddedTokenMatcher::longest_at(std::string_view text, size_t pos) const {
  int best = -1;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = edges_.find(static_cast<uint64_t>(node) * 256 + static_cast<unsigned char>(text[i]));
    if (it == edges_.end()) break;
    node = it->second;
    if (terminal_[node] >= 0) best = terminal_[node];
  }
  return best;
}

namespace {

// Start of the run of whitespace that ends `s` (s.size() if none).
size_t trailing_space_start(std::string_view s) {
  size_t start = 0;
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    size_t len = utf8_decode(s, i, &cp);
    const bool space = len > 0 && is_whitespace(cp);
    i += len == 0 ? 1 : len;
    if (!space) start = i;
  }
  return start;
}

size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    const size_t len = utf8_decode(s, i, &cp);
    if (len == 0 || !is_whitespace(cp)) break;
    i += len;
  }
  return i;
}

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  char32_t cp;
  return utf8_decode(s, i, &cp) > 0 && is_word_char(cp);
}

bool starts_with_word(std::string_view s) {
  char32_t cp;
  return !s.empty() && utf8_decode(s, 0, &cp) > 0 && is_word_char(cp);
}

}  // namespace

std::vector<Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> out;
  if (text.empty()) {
    out.push_back({{0, 0}, -1});
    return out;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    // Find the next (leftmost, then longest) match at or after pos.
    int idx = -1;
    size_t mstart = pos;
    for (; mstart < text.size(); ++mstart) {
      if (!first_byte_[static_cast<unsigned char>(text[mstart])]) continue;
      idx = longest_at(text, mstart);
      if (idx >= 0) break;
    }
    if (idx < 0) break;
    const Entry& e = tokens_[idx];
    size_t start = mstart;
    size_t stop = mstart + e.length;
    pos = stop;  // the matcher resumes after the raw match whatever happens below
    if (e.single_word) {
      const bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (e.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (e.rstrip) stop += leading_space_length(text.substr(stop));
    if (start > start_offset) out.push_back({{start_offset, start}, -1});
    out.push_back({{start, stop}, e.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({{start_offset, text.size()}, -1});
  return out;
}

}  // namespace vila::tok
