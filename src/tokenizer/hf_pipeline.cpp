#include "tokenizer/hf_pipeline.h"

#include "tokenizer/utf8.h"

namespace vila::tok {

namespace {

using nlohmann::json;

// The GPT-2 pre-tokenizer regex that ByteLevel applies itself when use_regex is true.
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

StatusOr<std::string> get_string(const json& j, const char* key, const std::string& where,
                                 const std::string* fallback = nullptr) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback) return *fallback;
    return invalid_argument(where + ": field '" + key + "' missing");
  }
  if (!it->is_string()) return invalid_argument(where + ": field '" + key + "' must be a string");
  return it->get<std::string>();
}

StatusOr<bool> get_bool(const json& j, const char* key, const std::string& where, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return invalid_argument(where + ": field '" + key + "' must be a bool");
  return it->get<bool>();
}

StatusOr<size_t> get_size(const json& j, const char* key, const std::string& where,
                          size_t fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() >= 0)) {
    return invalid_argument(where + ": field '" + key + "' must be a non-negative integer");
  }
  return it->get<size_t>();
}

StatusOr<std::string> get_type(const json& j, const std::string& where) {
  if (!j.is_object()) return invalid_argument(where + " must be an object");
  return get_string(j, "type", where);
}

// A one-character string field (Metaspace replacement, Strip content).
StatusOr<std::string> get_char(const json& j, const char* key, const std::string& where,
                               const std::string& fallback) {
  VILA_ASSIGN_OR_RETURN(std::string s, get_string(j, key, where, &fallback));
  char32_t cp;
  if (s.empty() || utf8_decode(s, 0, &cp) != s.size()) {
    return invalid_argument(where + ": field '" + key + "' must be one character");
  }
  return s;
}

std::string replace_all(std::string_view text, const Pattern& pattern, std::string_view with) {
  std::vector<Span> matches;
  pattern.find_all(text, &matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() + matches.size() * with.size());
  size_t prev = 0;
  for (const Span& m : matches) {
    out.append(text.substr(prev, m.first - prev));
    out.append(with);
    prev = m.second;
  }
  out.append(text.substr(prev));
  return out;
}

bool is_space(char32_t cp) { return is_whitespace(cp); }

const std::shared_ptr<const Pattern>& space_literal() {
  static const auto p = Pattern::literal(" ");
  return p;
}

// One match per character satisfying `pred` (HF's Pattern impl for Fn(char) -> bool).
template <typename Pred>
void char_matches(std::string_view text, Pred pred, std::vector<Span>* out) {
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp;
    size_t len = utf8_decode(text, i, &cp);
    if (len == 0) {
      i += 1;
      continue;
    }
    if (pred(cp)) out->emplace_back(i, i + len);
    i += len;
  }
}

StatusOr<SplitBehavior> parse_behavior(const json& j, const std::string& where) {
  VILA_ASSIGN_OR_RETURN(std::string b, get_string(j, "behavior", where));
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return invalid_argument(where + ": unknown split behavior '" + b + "'");
}

Status parse_normalizer_into(const json& j, const std::string& where, Normalizer* out) {
  if (j.is_null()) return ok_status();
  VILA_ASSIGN_OR_RETURN(std::string type, get_type(j, where));
  NormalizerStep step{};
  if (type == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) {
      return invalid_argument(where + ": field 'normalizers' missing or not an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      VILA_RETURN_IF_ERROR(
          parse_normalizer_into((*it)[i], where + ".normalizers[" + std::to_string(i) + "]", out));
    }
    return ok_status();
  } else if (type == "NFC") {
    step.type = NormalizerStep::kNfc;
  } else if (type == "NFD") {
    step.type = NormalizerStep::kNfd;
  } else if (type == "NFKC") {
    step.type = NormalizerStep::kNfkc;
  } else if (type == "NFKD") {
    step.type = NormalizerStep::kNfkd;
  } else if (type == "Lowercase") {
    step.type = NormalizerStep::kLowercase;
  } else if (type == "Prepend") {
    step.type = NormalizerStep::kPrepend;
    VILA_ASSIGN_OR_RETURN(step.text, get_string(j, "prepend", where));
  } else if (type == "Replace") {
    step.type = NormalizerStep::kReplace;
    auto it = j.find("pattern");
    if (it == j.end()) return invalid_argument(where + ": field 'pattern' missing");
    VILA_ASSIGN_OR_RETURN(step.pattern, parse_pattern(*it, where + ".pattern"));
    VILA_ASSIGN_OR_RETURN(step.text, get_string(j, "content", where));
  } else if (type == "Strip") {
    step.type = NormalizerStep::kStrip;
    VILA_ASSIGN_OR_RETURN(step.left, get_bool(j, "strip_left", where, false));
    VILA_ASSIGN_OR_RETURN(step.right, get_bool(j, "strip_right", where, false));
  } else {
    return unimplemented(where + ": normalizer type '" + type + "' is not supported");
  }
  out->steps.push_back(std::move(step));
  return ok_status();
}

Status parse_pre_tokenizer_into(const json& j, const std::string& where, PreTokenizer* out) {
  if (j.is_null()) return ok_status();
  VILA_ASSIGN_OR_RETURN(std::string type, get_type(j, where));
  PreTokenizerStep step{};
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) {
      return invalid_argument(where + ": field 'pretokenizers' missing or not an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      VILA_RETURN_IF_ERROR(parse_pre_tokenizer_into(
          (*it)[i], where + ".pretokenizers[" + std::to_string(i) + "]", out));
    }
    return ok_status();
  } else if (type == "Split") {
    step.type = PreTokenizerStep::kSplit;
    auto it = j.find("pattern");
    if (it == j.end()) return invalid_argument(where + ": field 'pattern' missing");
    VILA_ASSIGN_OR_RETURN(step.pattern, parse_pattern(*it, where + ".pattern"));
    VILA_ASSIGN_OR_RETURN(step.behavior, parse_behavior(j, where));
    VILA_ASSIGN_OR_RETURN(step.invert, get_bool(j, "invert", where, false));
  } else if (type == "ByteLevel") {
    step.type = PreTokenizerStep::kByteLevel;
    VILA_ASSIGN_OR_RETURN(step.add_prefix_space, get_bool(j, "add_prefix_space", where, true));
    VILA_ASSIGN_OR_RETURN(bool use_regex, get_bool(j, "use_regex", where, true));
    if (use_regex) {
      static const auto gpt2 = Pattern::regex(kGpt2Regex);
      if (!gpt2.ok()) return gpt2.status();
      step.pattern = *gpt2;
    }
    out->byte_level = true;
  } else if (type == "Metaspace") {
    step.type = PreTokenizerStep::kMetaspace;
    VILA_ASSIGN_OR_RETURN(step.replacement, get_char(j, "replacement", where, "\xE2\x96\x81"));
    VILA_ASSIGN_OR_RETURN(step.split, get_bool(j, "split", where, true));
    VILA_ASSIGN_OR_RETURN(bool add_prefix_space, get_bool(j, "add_prefix_space", where, true));
    const std::string dflt = add_prefix_space ? "always" : "never";
    VILA_ASSIGN_OR_RETURN(std::string scheme, get_string(j, "prepend_scheme", where, &dflt));
    if (scheme == "always") {
      step.prepend = PreTokenizerStep::kAlways;
    } else if (scheme == "first") {
      step.prepend = PreTokenizerStep::kFirst;
    } else if (scheme == "never") {
      step.prepend = PreTokenizerStep::kNever;
    } else {
      return invalid_argument(where + ": unknown prepend_scheme '" + scheme + "'");
    }
  } else if (type == "Digits") {
    step.type = PreTokenizerStep::kDigits;
    VILA_ASSIGN_OR_RETURN(step.individual_digits, get_bool(j, "individual_digits", where, false));
  } else if (type == "WhitespaceSplit") {
    step.type = PreTokenizerStep::kWhitespaceSplit;
  } else {
    return unimplemented(where + ": pre_tokenizer type '" + type + "' is not supported");
  }
  out->steps.push_back(std::move(step));
  return ok_status();
}

Status parse_decoder_into(const json& j, const std::string& where, Decoder* out) {
  if (j.is_null()) return ok_status();
  VILA_ASSIGN_OR_RETURN(std::string type, get_type(j, where));
  DecoderStep step{};
  if (type == "Sequence") {
    auto it = j.find("decoders");
    if (it == j.end() || !it->is_array()) {
      return invalid_argument(where + ": field 'decoders' missing or not an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      VILA_RETURN_IF_ERROR(
          parse_decoder_into((*it)[i], where + ".decoders[" + std::to_string(i) + "]", out));
    }
    return ok_status();
  } else if (type == "ByteLevel") {
    step.type = DecoderStep::kByteLevel;
  } else if (type == "Replace") {
    step.type = DecoderStep::kReplace;
    auto it = j.find("pattern");
    if (it == j.end()) return invalid_argument(where + ": field 'pattern' missing");
    VILA_ASSIGN_OR_RETURN(step.pattern, parse_pattern(*it, where + ".pattern"));
    VILA_ASSIGN_OR_RETURN(step.text, get_string(j, "content", where));
  } else if (type == "ByteFallback") {
    step.type = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    step.type = DecoderStep::kFuse;
  } else if (type == "Strip") {
    step.type = DecoderStep::kStrip;
    VILA_ASSIGN_OR_RETURN(step.text, get_char(j, "content", where, " "));
    VILA_ASSIGN_OR_RETURN(step.start, get_size(j, "start", where, 0));
    VILA_ASSIGN_OR_RETURN(step.stop, get_size(j, "stop", where, 0));
  } else if (type == "Metaspace") {
    step.type = DecoderStep::kMetaspace;
    VILA_ASSIGN_OR_RETURN(step.text, get_char(j, "replacement", where, "\xE2\x96\x81"));
    VILA_ASSIGN_OR_RETURN(bool add_prefix_space, get_bool(j, "add_prefix_space", where, true));
    const std::string dflt = add_prefix_space ? "always" : "never";
    VILA_ASSIGN_OR_RETURN(std::string scheme, get_string(j, "prepend_scheme", where, &dflt));
    step.prepend = scheme != "never";
  } else {
    return unimplemented(where + ": decoder type '" + type + "' is not supported");
  }
  out->steps.push_back(std::move(step));
  return ok_status();
}

// "<0xNN>" -> the byte, else -1 (HF ByteFallback accepts either case of hex digits).
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = t[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

// ByteLevel decoding of one token: the bytes of its characters, or the token as is if some
// character is outside the byte alphabet.
void byte_level_bytes(std::string_view token, std::string* out) {
  const size_t mark = out->size();
  size_t i = 0;
  while (i < token.size()) {
    char32_t cp;
    const size_t len = utf8_decode(token, i, &cp);
    const int b = len == 0 ? -1 : unicode_to_byte(cp);
    if (b < 0) {
      out->resize(mark);
      out->append(token);
      return;
    }
    out->push_back(static_cast<char>(b));
    i += len;
  }
}

std::string strip_chars(std::string_view token, std::string_view ch, size_t start, size_t stop) {
  size_t begin = 0, end = token.size();
  for (size_t k = 0; k < start && token.substr(begin, ch.size()) == ch; ++k) begin += ch.size();
  for (size_t k = 0;
       k < stop && end >= begin + ch.size() && token.substr(end - ch.size(), ch.size()) == ch;
       ++k) {
    end -= ch.size();
  }
  return std::string(token.substr(begin, end - begin));
}

std::string metaspace_decode(std::string_view token, std::string_view rep, bool drop) {
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    if (token.substr(i, rep.size()) == rep) {
      if (!drop) out.push_back(' ');
      i += rep.size();
    } else {
      out.push_back(token[i++]);
    }
  }
  return out;
}

}  // namespace

StatusOr<std::shared_ptr<const Pattern>> parse_pattern(const json& j, const std::string& where) {
  if (j.is_object()) {
    auto s = j.find("String");
    if (s != j.end() && s->is_string()) return Pattern::literal(s->get<std::string>());
    auto r = j.find("Regex");
    if (r != j.end() && r->is_string()) {
      auto p = Pattern::regex(r->get<std::string>());
      if (!p.ok()) return p.status().with_context(where);
      return p;
    }
  }
  return invalid_argument(where + " must be {\"String\": ...} or {\"Regex\": ...}");
}

StatusOr<Normalizer> parse_normalizer(const json& j, const std::string& where) {
  Normalizer n;
  VILA_RETURN_IF_ERROR(parse_normalizer_into(j, where, &n));
  return n;
}

StatusOr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& where) {
  PreTokenizer p;
  VILA_RETURN_IF_ERROR(parse_pre_tokenizer_into(j, where, &p));
  return p;
}

StatusOr<Decoder> parse_decoder(const json& j, const std::string& where) {
  Decoder d;
  VILA_RETURN_IF_ERROR(parse_decoder_into(j, where, &d));
  return d;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const NormalizerStep& step : steps) {
    switch (step.type) {
      case NormalizerStep::kNfc:
        s = normalize(s, NormForm::kNfc);
        break;
      case NormalizerStep::kNfd:
        s = normalize(s, NormForm::kNfd);
        break;
      case NormalizerStep::kNfkc:
        s = normalize(s, NormForm::kNfkc);
        break;
      case NormalizerStep::kNfkd:
        s = normalize(s, NormForm::kNfkd);
        break;
      case NormalizerStep::kLowercase:
        s = lowercase(s);
        break;
      case NormalizerStep::kPrepend:
        if (!s.empty()) s.insert(0, step.text);
        break;
      case NormalizerStep::kReplace:
        s = replace_all(s, *step.pattern, step.text);
        break;
      case NormalizerStep::kStrip: {
        size_t begin = 0, end = s.size();
        if (step.left) {
          char32_t cp;
          size_t len;
          while (begin < end && (len = utf8_decode(s, begin, &cp)) > 0 && is_space(cp)) {
            begin += len;
          }
        }
        if (step.right) {
          while (end > begin) {
            size_t k = end - 1;
            while (k > begin && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
            char32_t cp;
            if (utf8_decode(s, k, &cp) == 0 || !is_space(cp)) break;
            end = k;
          }
        }
        s = s.substr(begin, end - begin);
        break;
      }
    }
  }
  return s;
}

void PreTokenizer::apply(std::string text, bool at_origin, std::vector<PreToken>* out) const {
  std::vector<PreToken> cur;
  cur.push_back({std::move(text), at_origin});
  std::vector<PreToken> next;
  std::vector<Span> matches;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (PreToken& piece : cur) {
      matches.clear();
      SplitBehavior behavior = step.behavior;
      bool invert = step.invert;
      std::string& s = piece.text;
      switch (step.type) {
        case PreTokenizerStep::kSplit:
          step.pattern->find_all(s, &matches);
          break;
        case PreTokenizerStep::kByteLevel:
          if (step.add_prefix_space && (s.empty() || s[0] != ' ')) s = " " + s;
          behavior = SplitBehavior::kIsolated;
          invert = false;
          if (step.pattern) step.pattern->find_all(s, &matches);
          break;
        case PreTokenizerStep::kMetaspace: {
          s = replace_all(s, *space_literal(), step.replacement);
          const bool starts = s.compare(0, step.replacement.size(), step.replacement) == 0;
          if (!starts && (step.prepend == PreTokenizerStep::kAlways ||
                          (step.prepend == PreTokenizerStep::kFirst && piece.at_origin))) {
            s.insert(0, step.replacement);
          }
          behavior = SplitBehavior::kMergedWithNext;
          invert = false;
          if (step.split) {
            size_t pos = 0;
            while ((pos = s.find(step.replacement, pos)) != std::string::npos) {
              matches.emplace_back(pos, pos + step.replacement.size());
              pos += step.replacement.size();
            }
          }
          break;
        }
        case PreTokenizerStep::kDigits:
          char_matches(s, is_numeric, &matches);
          behavior = step.individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
          invert = false;
          break;
        case PreTokenizerStep::kWhitespaceSplit:
          char_matches(s, is_space, &matches);
          behavior = SplitBehavior::kRemoved;
          invert = false;
          break;
      }
      const size_t first_new = next.size();
      if (matches.empty() && !invert) {
        if (!s.empty()) next.push_back(std::move(piece));
      } else {
        for (const Span& sp : split_by_matches(s.size(), matches, behavior, invert)) {
          next.push_back(
              {s.substr(sp.first, sp.second - sp.first), piece.at_origin && sp.first == 0});
        }
      }
      if (step.type == PreTokenizerStep::kByteLevel) {  // map this step's pieces to the alphabet
        for (size_t k = first_new; k < next.size(); ++k) {
          std::string mapped;
          mapped.reserve(next[k].text.size() * 2);
          for (unsigned char c : next[k].text) mapped += byte_to_unicode(c);
          next[k].text = std::move(mapped);
        }
      }
    }
    cur.swap(next);
  }
  for (PreToken& p : cur) {
    if (!p.text.empty()) out->push_back(std::move(p));
  }
}

bool Decoder::has_byte_level() const {
  for (const DecoderStep& s : steps) {
    if (s.type == DecoderStep::kByteLevel) return true;
  }
  return false;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  for (const DecoderStep& step : steps) {
    switch (step.type) {
      case DecoderStep::kByteLevel: {
        std::string bytes;
        for (const std::string& t : tokens) byte_level_bytes(t, &bytes);
        tokens.assign(1, utf8_lossy(bytes));
        break;
      }
      case DecoderStep::kReplace:
        for (std::string& t : tokens) t = replace_all(t, *step.pattern, step.text);
        break;
      case DecoderStep::kByteFallback: {
        std::vector<std::string> out;
        std::string group;
        size_t group_len = 0;
        auto flush = [&]() {
          if (group_len == 0) return;
          if (utf8_valid(group)) {
            out.push_back(group);
          } else {
            std::string rep;
            for (size_t k = 0; k < group_len; ++k) rep += "\xEF\xBF\xBD";
            out.push_back(rep);
          }
          group.clear();
          group_len = 0;
        };
        for (std::string& t : tokens) {
          const int b = parse_byte_token(t);
          if (b >= 0) {
            group.push_back(static_cast<char>(b));
            ++group_len;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens.swap(out);
        break;
      }
      case DecoderStep::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::kStrip:
        for (std::string& t : tokens) t = strip_chars(t, step.text, step.start, step.stop);
        break;
      case DecoderStep::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = metaspace_decode(tokens[i], step.text, i == 0 && step.prepend);
        }
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return utf8_lossy(out);
}

std::string Decoder::token_bytes(std::string_view token) const {
  std::string s(token);
  for (const DecoderStep& step : steps) {
    switch (step.type) {
      case DecoderStep::kByteLevel: {
        std::string bytes;
        byte_level_bytes(s, &bytes);
        s = std::move(bytes);
        break;
      }
      case DecoderStep::kReplace:
        s = replace_all(s, *step.pattern, step.text);
        break;
      case DecoderStep::kByteFallback: {
        const int b = parse_byte_token(s);
        if (b >= 0) s.assign(1, static_cast<char>(b));
        break;
      }
      case DecoderStep::kMetaspace:
        s = metaspace_decode(s, step.text, false);
        break;
      case DecoderStep::kFuse:
      case DecoderStep::kStrip:
        break;
    }
  }
  return s;
}

}  // namespace vila::tok
