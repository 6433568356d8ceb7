// Tokenizer::load_dir: picks the tokenizer files of a model folder and applies
// tokenizer_config.json (special tokens, add_bos_token, chat template, extra added tokens).
#include "tokenizer/tokenizer.h"

#include <cstdlib>
#include <set>

#include "core/mapped_file.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sp_tokenizer.h"

namespace vila {

namespace {

using nlohmann::json;

struct TokenizerConfig {
  std::optional<std::string> bos, eos, pad, unk;
  std::string bos_where, eos_where;  // "file: field" of the value used, for errors
  std::set<std::string> additional_special;
  std::optional<bool> add_bos_token;
  std::optional<bool> legacy;  // LlamaTokenizer's legacy flag (SentencePiece prefix rule)
  std::string chat_template;
  std::vector<tok::AddedToken> added;  // added_tokens_decoder, then added_tokens.json
};

// A special-token field: "<s>", {"content": "<s>", ...} or null.
StatusOr<std::optional<std::string>> token_field(const json& obj, const char* key,
                                                 const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return std::optional<std::string>(c->get<std::string>());
  }
  return invalid_argument(where + ": field '" + key +
                          "' must be a string or an object with a string 'content'");
}

Status read_special_tokens(const json& j, const std::string& path, TokenizerConfig* cfg) {
  if (!j.is_object()) return invalid_argument(path + ": the top level must be an object");
  struct Field {
    const char* key;
    std::optional<std::string>* out;
    std::string* where;
  };
  std::string unused;
  for (const Field& f :
       {Field{"bos_token", &cfg->bos, &cfg->bos_where},
        Field{"eos_token", &cfg->eos, &cfg->eos_where}, Field{"pad_token", &cfg->pad, &unused},
        Field{"unk_token", &cfg->unk, &unused}}) {
    VILA_ASSIGN_OR_RETURN(std::optional<std::string> v, token_field(j, f.key, path));
    if (v) {
      *f.out = std::move(v);
      *f.where = path + ": field '" + f.key + "'";
    }
  }
  auto extra = j.find("additional_special_tokens");
  if (extra != j.end() && extra->is_array()) {
    for (const json& e : *extra) {
      if (e.is_string()) cfg->additional_special.insert(e.get<std::string>());
      if (e.is_object() && e.contains("content") && e["content"].is_string()) {
        cfg->additional_special.insert(e["content"].get<std::string>());
      }
    }
  }
  return ok_status();
}

Status read_config(const std::string& dir, TokenizerConfig* cfg) {
  const std::string map_path = path_join(dir, "special_tokens_map.json");
  if (file_exists(map_path)) {
    VILA_ASSIGN_OR_RETURN(json j, tok::read_json_file(map_path));
    VILA_RETURN_IF_ERROR(read_special_tokens(j, map_path, cfg));
  }
  const std::string cfg_path = path_join(dir, "tokenizer_config.json");
  if (file_exists(cfg_path)) {
    VILA_ASSIGN_OR_RETURN(json j, tok::read_json_file(cfg_path));
    VILA_RETURN_IF_ERROR(read_special_tokens(j, cfg_path, cfg));
    auto legacy = j.find("legacy");
    if (legacy != j.end() && !legacy->is_null()) {
      if (!legacy->is_boolean()) {
        return invalid_argument(cfg_path + ": field 'legacy' must be a bool");
      }
      cfg->legacy = legacy->get<bool>();
    }
    auto bos = j.find("add_bos_token");
    if (bos != j.end() && !bos->is_null()) {
      if (!bos->is_boolean()) {
        return invalid_argument(cfg_path + ": field 'add_bos_token' must be a bool");
      }
      cfg->add_bos_token = bos->get<bool>();
    }
    auto tmpl = j.find("chat_template");
    if (tmpl != j.end() && !tmpl->is_null()) {
      if (tmpl->is_string()) {
        cfg->chat_template = tmpl->get<std::string>();
      } else if (tmpl->is_array()) {  // [{"name": "default", "template": "..."}, ...]
        for (const json& t : *tmpl) {
          if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) {
            return invalid_argument(cfg_path +
                                    ": field 'chat_template' entries need a string 'template'");
          }
          const bool is_default = t.contains("name") && t["name"] == "default";
          if (cfg->chat_template.empty() || is_default) {
            cfg->chat_template = t["template"].get<std::string>();
          }
        }
      } else {
        return invalid_argument(cfg_path + ": field 'chat_template' must be a string or a list");
      }
    }
    auto dec = j.find("added_tokens_decoder");
    if (dec != j.end() && !dec->is_null()) {
      if (!dec->is_object()) {
        return invalid_argument(cfg_path + ": field 'added_tokens_decoder' must be an object");
      }
      for (auto it = dec->begin(); it != dec->end(); ++it) {
        const std::string where = cfg_path + ": added_tokens_decoder['" + it.key() + "']";
        char* end = nullptr;
        const long id = std::strtol(it.key().c_str(), &end, 10);
        if (it.key().empty() || *end != '\0' || id < 0 || id > INT32_MAX) {
          return invalid_argument(where + ": the key must be a token id");
        }
        VILA_ASSIGN_OR_RETURN(tok::AddedToken t,
                              tok::parse_added_token(*it, static_cast<int32_t>(id), where));
        cfg->added.push_back(std::move(t));
      }
    }
  }
  const std::string jinja_path = path_join(dir, "chat_template.jinja");
  if (cfg->chat_template.empty() && file_exists(jinja_path)) {
    VILA_ASSIGN_OR_RETURN(cfg->chat_template, read_text_file(jinja_path));
  }
  const std::string added_path = path_join(dir, "added_tokens.json");
  if (file_exists(added_path)) {
    VILA_ASSIGN_OR_RETURN(json j, tok::read_json_file(added_path));
    if (!j.is_object()) return invalid_argument(added_path + ": must be an object {token: id}");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
        return invalid_argument(added_path + ": id of '" + it.key() + "' is not a valid id");
      }
      tok::AddedToken t;
      t.id = static_cast<int32_t>(it->get<int64_t>());
      t.content = it.key();
      cfg->added.push_back(std::move(t));
    }
  }
  // Tokens named as special in the config are special wherever they were defined.
  std::set<std::string> specials = cfg->additional_special;
  for (const auto* s : {&cfg->bos, &cfg->eos, &cfg->pad, &cfg->unk}) {
    if (*s) specials.insert(**s);
  }
  for (tok::AddedToken& t : cfg->added) {
    if (specials.count(t.content)) t.special = true;
  }
  return ok_status();
}

Status apply_config(const TokenizerConfig& cfg, Tokenizer* t) {
  if (cfg.bos) {
    t->bos_id = t->piece_to_id(*cfg.bos);
    if (!t->bos_id) return invalid_argument(cfg.bos_where + ": '" + *cfg.bos + "' is not a token");
  }
  if (cfg.eos) {
    t->eos_id = t->piece_to_id(*cfg.eos);
    if (!t->eos_id) return invalid_argument(cfg.eos_where + ": '" + *cfg.eos + "' is not a token");
  }
  // HF would append an unknown pad token to the vocabulary; we only ever need known ones.
  if (cfg.pad) t->pad_id = t->piece_to_id(*cfg.pad);
  t->chat_template_source = cfg.chat_template;
  return ok_status();
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::load_json_string(std::string_view text,
                                                                 const std::string& name) {
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<tok::HfTokenizer> t,
                        tok::HfTokenizer::from_tokenizer_json(text, name));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::load_dir(const std::string& dir) {
  TokenizerConfig cfg;
  VILA_RETURN_IF_ERROR(read_config(dir, &cfg));
  std::unique_ptr<Tokenizer> result;
  const std::string json_path = path_join(dir, "tokenizer.json");
  const std::string vocab_path = path_join(dir, "vocab.json");
  const std::string merges_path = path_join(dir, "merges.txt");
  const std::string model_path = path_join(dir, "tokenizer.model");
  if (file_exists(json_path)) {
    VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(json_path));
    VILA_ASSIGN_OR_RETURN(std::unique_ptr<tok::HfTokenizer> t,
                          tok::HfTokenizer::from_tokenizer_json(text, json_path));
    t->add_tokens(cfg.added);
    // Fast tokenizers add BOS through their post-processor (e.g. TemplateProcessing "<s> $A").
    t->add_bos_token = cfg.add_bos_token.value_or(!t->post_processor_prefix().empty() && cfg.bos &&
                                                  t->post_processor_prefix() == *cfg.bos);
    result = std::move(t);
  } else if (file_exists(vocab_path) && file_exists(merges_path)) {
    VILA_ASSIGN_OR_RETURN(json vocab, tok::read_json_file(vocab_path));
    VILA_ASSIGN_OR_RETURN(std::string merges, read_text_file(merges_path));
    VILA_ASSIGN_OR_RETURN(
        std::unique_ptr<tok::HfTokenizer> t,
        tok::HfTokenizer::from_vocab_merges(vocab, vocab_path, merges, merges_path));
    t->add_tokens(cfg.added);
    t->add_bos_token = cfg.add_bos_token.value_or(false);
    result = std::move(t);
  } else if (file_exists(model_path)) {
    // HF's LlamaTokenizer treats a missing `legacy` as true.
    VILA_ASSIGN_OR_RETURN(
        result, tok::load_sentencepiece(model_path, cfg.added, cfg.legacy.value_or(true)));
    // LlamaTokenizer's default is add_bos_token=True.
    result->add_bos_token = cfg.add_bos_token.value_or(true);
  } else {
    return not_found(dir + ": no tokenizer.json, vocab.json + merges.txt or tokenizer.model");
  }
  VILA_RETURN_IF_ERROR(apply_config(cfg, result.get()));
  return result;
}

}  // namespace vila
