#include "tokenizer/hf_tokenizer.h"

#include <algorithm>

#include "core/mapped_file.h"
#include "tokenizer/utf8.h"

namespace vila::tok {

namespace {

using nlohmann::json;

// transformers' PRETOKENIZE_REGEX of Qwen2Tokenizer.
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

StatusOr<std::optional<std::string>> optional_string(const json& obj, const char* key,
                                                     const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return invalid_argument(where + ": field '" + key + "' must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

StatusOr<bool> optional_bool(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return false;
  if (!it->is_boolean()) return invalid_argument(where + ": field '" + key + "' must be a bool");
  return it->get<bool>();
}

// The first SpecialToken of a TemplateProcessing "single" template, searched through Sequence.
std::string template_prefix(const json& pp) {
  if (!pp.is_object()) return "";
  auto type = pp.find("type");
  if (type == pp.end() || !type->is_string()) return "";
  if (*type == "Sequence") {
    auto list = pp.find("processors");
    if (list == pp.end() || !list->is_array()) return "";
    for (const json& p : *list) {
      std::string s = template_prefix(p);
      if (!s.empty()) return s;
    }
    return "";
  }
  if (*type != "TemplateProcessing") return "";
  auto single = pp.find("single");
  if (single == pp.end() || !single->is_array() || single->empty()) return "";
  const json& first = (*single)[0];
  if (!first.is_object()) return "";
  auto st = first.find("SpecialToken");
  if (st == first.end() || !st->is_object()) return "";
  auto id = st->find("id");
  return id != st->end() && id->is_string() ? id->get<std::string>() : "";
}

}  // namespace

StatusOr<json> parse_json_text(std::string_view text, const std::string& name) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return invalid_argument(name + ": malformed JSON at byte " + std::to_string(e.byte) + ": " +
                            e.what());
  } catch (const std::exception& e) {
    return invalid_argument(name + ": malformed JSON: " + e.what());
  }
}

StatusOr<json> read_json_file(const std::string& path) {
  VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  return parse_json_text(text, path);
}

StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::from_tokenizer_json(std::string_view text,
                                                                        const std::string& name) {
  VILA_ASSIGN_OR_RETURN(TokenizerJsonParts parts, parse_tokenizer_json(text, name));
  const json& j = parts.rest;
  if (!j.is_object()) return invalid_argument(name + ": the top level must be an object");
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());

  auto model_it = j.find("model");
  if (model_it == j.end() || !model_it->is_object()) {
    return invalid_argument(name + ": field 'model' missing or not an object");
  }
  const json& model = *model_it;
  const std::string mwhere = name + ": model";
  VILA_ASSIGN_OR_RETURN(std::optional<std::string> type, optional_string(model, "type", mwhere));
  if (type && *type != "BPE") {
    return unimplemented(mwhere + ": model type '" + *type + "' is not supported (only BPE)");
  }
  if (!parts.has_vocab) {
    return invalid_argument(mwhere + ": field 'vocab' missing or not an object");
  }
  auto merges_it = model.find("merges");
  if (!parts.has_merges && merges_it != model.end() && !merges_it->is_null()) {
    return invalid_argument(mwhere + ": field 'merges' must be an array");
  }
  BpeOptions opts;
  VILA_ASSIGN_OR_RETURN(opts.unk_token, optional_string(model, "unk_token", mwhere));
  VILA_ASSIGN_OR_RETURN(auto prefix, optional_string(model, "continuing_subword_prefix", mwhere));
  VILA_ASSIGN_OR_RETURN(auto suffix, optional_string(model, "end_of_word_suffix", mwhere));
  opts.continuing_subword_prefix = prefix.value_or("");
  opts.end_of_word_suffix = suffix.value_or("");
  VILA_ASSIGN_OR_RETURN(opts.fuse_unk, optional_bool(model, "fuse_unk", mwhere));
  VILA_ASSIGN_OR_RETURN(opts.byte_fallback, optional_bool(model, "byte_fallback", mwhere));
  VILA_ASSIGN_OR_RETURN(opts.ignore_merges, optional_bool(model, "ignore_merges", mwhere));
  VILA_ASSIGN_OR_RETURN(
      t->model_, BpeModel::build(std::move(parts.vocab), parts.merges, std::move(opts), mwhere));
  parts.merges = {};

  auto section = [&](const char* key) -> const json& {
    static const json kNull;
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
  };
  VILA_ASSIGN_OR_RETURN(t->normalizer_,
                        parse_normalizer(section("normalizer"), name + ": normalizer"));
  VILA_ASSIGN_OR_RETURN(t->pre_tokenizer_,
                        parse_pre_tokenizer(section("pre_tokenizer"), name + ": pre_tokenizer"));
  VILA_ASSIGN_OR_RETURN(t->decoder_, parse_decoder(section("decoder"), name + ": decoder"));
  t->kind_ = t->decoder_.has_byte_level() || t->pre_tokenizer_.byte_level
                 ? TokenizerKind::kByteLevelBpe
                 : TokenizerKind::kSentencePiece;
  t->post_prefix_ = template_prefix(section("post_processor"));

  const json& added = section("added_tokens");
  if (!added.is_null() && !added.is_array()) {
    return invalid_argument(name + ": field 'added_tokens' must be an array");
  }
  std::vector<AddedToken> tokens;
  for (size_t i = 0; !added.is_null() && i < added.size(); ++i) {
    const std::string where = name + ": added_tokens[" + std::to_string(i) + "]";
    const json& a = added[i];
    auto id_it = a.is_object() ? a.find("id") : a.end();
    if (!a.is_object() || id_it == a.end() || !id_it->is_number_integer() ||
        id_it->get<int64_t>() < 0 || id_it->get<int64_t>() > INT32_MAX) {
      return invalid_argument(where + ": field 'id' missing or not a valid id");
    }
    VILA_ASSIGN_OR_RETURN(AddedToken tok,
                          parse_added_token(a, static_cast<int32_t>(id_it->get<int64_t>()), where));
    tokens.push_back(std::move(tok));
  }
  t->n_tokens_ = t->model_.size();
  t->add_tokens(tokens);
  return t;
}

StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::from_vocab_merges(
    const json& vocab_json, const std::string& vocab_name, std::string_view merges_txt,
    const std::string& merges_name) {
  if (!vocab_json.is_object()) return invalid_argument(vocab_name + ": must be a JSON object");
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  VocabMap vocab;
  vocab.reserve(vocab_json.size());
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
      return invalid_argument(vocab_name + ": id of '" + it.key() + "' is not a valid id");
    }
    vocab.emplace(it.key(), static_cast<int32_t>(it->get<int64_t>()));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  size_t pos = 0, line_no = 0;
  while (pos < merges_txt.size()) {
    size_t eol = merges_txt.find('\n', pos);
    if (eol == std::string_view::npos) eol = merges_txt.size();
    std::string_view line = merges_txt.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    // Python's str.strip() / str.split() on ASCII whitespace.
    auto is_ws = [](char c) {
      return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
    };
    while (!line.empty() && is_ws(line.front())) line.remove_prefix(1);
    while (!line.empty() && is_ws(line.back())) line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 9) == "#version:")) continue;
    size_t a_end = 0;
    while (a_end < line.size() && !is_ws(line[a_end])) ++a_end;
    size_t b_begin = a_end;
    while (b_begin < line.size() && is_ws(line[b_begin])) ++b_begin;
    size_t b_end = b_begin;
    while (b_end < line.size() && !is_ws(line[b_end])) ++b_end;
    if (b_begin == line.size() || b_end != line.size()) {
      return invalid_argument(merges_name + ": line " + std::to_string(line_no) +
                              " must be two tokens separated by a space");
    }
    merges.emplace_back(std::string(line.substr(0, a_end)),
                        std::string(line.substr(b_begin, b_end - b_begin)));
  }
  VILA_ASSIGN_OR_RETURN(t->model_, BpeModel::build(std::move(vocab), merges, BpeOptions{},
                                                   vocab_name + " + " + merges_name));
  NormalizerStep nfc;
  nfc.type = NormalizerStep::kNfc;
  t->normalizer_.steps.push_back(nfc);
  VILA_ASSIGN_OR_RETURN(auto regex, Pattern::regex(kQwen2Regex));
  PreTokenizerStep split{};
  split.type = PreTokenizerStep::kSplit;
  split.pattern = regex;
  split.behavior = SplitBehavior::kIsolated;
  t->pre_tokenizer_.steps.push_back(split);
  PreTokenizerStep bytes{};
  bytes.type = PreTokenizerStep::kByteLevel;
  t->pre_tokenizer_.steps.push_back(bytes);
  t->pre_tokenizer_.byte_level = true;
  DecoderStep byte_decoder;
  byte_decoder.type = DecoderStep::kByteLevel;
  t->decoder_.steps.push_back(byte_decoder);
  t->kind_ = TokenizerKind::kByteLevelBpe;
  t->normalize_first_ = true;
  t->n_tokens_ = t->model_.size();
  return t;
}

void HfTokenizer::add_tokens(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& tok : tokens) {
    if (tok.id < 0 || tok.content.empty()) continue;
    if (added_by_id_.count(tok.id) || added_by_content_.count(tok.content)) continue;
    added_by_id_[tok.id] = added_.size();
    added_by_content_.emplace(tok.content, tok.id);
    added_.push_back(tok);
    n_tokens_ = std::max(n_tokens_, tok.id + 1);
  }
  rebuild_matchers();
}

void HfTokenizer::rebuild_matchers() {
  raw_matcher_ = AddedTokenMatcher();
  normalized_matcher_ = AddedTokenMatcher();
  for (const AddedToken& tok : added_) {
    if (normalize_first_ || !tok.normalized) {
      raw_matcher_.add(tok.content, tok.id, tok.lstrip, tok.rstrip, tok.single_word);
    } else {
      // HF matches normalized tokens by their normalized content, in the normalized text.
      normalized_matcher_.add(normalizer_.apply(tok.content), tok.id, tok.lstrip, tok.rstrip,
                              tok.single_word);
    }
  }
}

void HfTokenizer::encode_plain(std::string_view text, bool at_origin,
                               std::vector<int32_t>* ids) const {
  std::vector<PreToken> pieces;
  auto tokenize = [&](std::string s, bool origin) {
    pieces.clear();
    pre_tokenizer_.apply(std::move(s), origin, &pieces);
    for (const PreToken& p : pieces) model_.tokenize(p.text, ids);
  };
  std::string norm = normalize_first_ ? std::string(text) : normalizer_.apply(text);
  if (norm.empty()) return;
  if (normalized_matcher_.empty()) {
    tokenize(std::move(norm), at_origin);
    return;
  }
  for (const Segment& seg : normalized_matcher_.split(norm)) {
    if (seg.id >= 0) {
      ids->push_back(seg.id);
    } else if (seg.span.second > seg.span.first) {
      tokenize(norm.substr(seg.span.first, seg.span.second - seg.span.first),
               at_origin && seg.span.first == 0);
    }
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view input) const {
  std::vector<int32_t> ids;
  std::string owned;
  std::string_view text = input;
  if (!utf8_valid(text)) {  // HF only sees valid str: invalid bytes become U+FFFD
    owned = utf8_lossy(text);
    text = owned;
  }
  if (normalize_first_) {
    owned = normalizer_.apply(text);
    text = owned;
  }
  if (raw_matcher_.empty()) {
    encode_plain(text, true, &ids);
    return ids;
  }
  for (const Segment& seg : raw_matcher_.split(text)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else if (seg.span.second > seg.span.first) {
      encode_plain(text.substr(seg.span.first, seg.span.second - seg.span.first),
                   seg.span.first == 0, &ids);
    }
  }
  return ids;
}

std::string HfTokenizer::id_to_piece(int32_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_[it->second].content;
  return model_.piece(id);
}

std::optional<int32_t> HfTokenizer::piece_to_id(std::string_view piece) const {
  auto it = added_by_content_.find(piece);
  if (it != added_by_content_.end()) return it->second;
  auto v = model_.vocab().find(piece);
  if (v != model_.vocab().end()) return v->second;
  return std::nullopt;
}

bool HfTokenizer::is_special(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

std::string HfTokenizer::token_bytes(int32_t id) const {
  const std::string piece = id_to_piece(id);
  if (decoder_.steps.empty()) return piece;
  return decoder_.token_bytes(piece);
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    std::string piece = id_to_piece(id);
    if (!piece.empty()) tokens.push_back(std::move(piece));  // HF drops unknown ids
  }
  if (decoder_.steps.empty()) {  // HF joins with spaces when there is no decoder
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return utf8_lossy(out);
  }
  return decoder_.decode(std::move(tokens));
}

}  // namespace vila::tok
