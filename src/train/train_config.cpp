#include "train/train_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace vila::train {

const char* train_stage_name(TrainStage stage) {
  switch (stage) {
    case TrainStage::kAlign:
      return "align";
    case TrainStage::kPretrain:
      return "pretrain";
    case TrainStage::kSft:
      return "sft";
  }
  return "?";
}

StatusOr<TrainStage> parse_train_stage(std::string_view name) {
  if (name == "align") return TrainStage::kAlign;
  if (name == "pretrain") return TrainStage::kPretrain;
  if (name == "sft") return TrainStage::kSft;
  return invalid_argument("unknown stage '" + std::string(name) +
                          "' (expected align, pretrain or sft)");
}

std::array<bool, kParamModules> stage_modules(TrainStage stage) {
  std::array<bool, kParamModules> on{};
  on[static_cast<int>(ParamModule::kProjector)] = true;
  on[static_cast<int>(ParamModule::kLlm)] = stage != TrainStage::kAlign;
  on[static_cast<int>(ParamModule::kVisionTower)] = stage == TrainStage::kSft;
  return on;
}

StatusOr<std::array<bool, kParamModules>> TrainConfig::trainable_modules() const {
  std::array<bool, kParamModules> on = stage_modules(stage);
  for (const std::string& name : freeze) {
    VILA_ASSIGN_OR_RETURN(ParamModule m, parse_param_module(name));
    on[static_cast<int>(m)] = false;
  }
  for (const std::string& name : unfreeze) {
    VILA_ASSIGN_OR_RETURN(ParamModule m, parse_param_module(name));
    on[static_cast<int>(m)] = true;
  }
  if (!on[0] && !on[1] && !on[2]) {
    return invalid_argument(source + ": every module is frozen: nothing would train");
  }
  return on;
}

namespace {

using nlohmann::json;

// Reads the fields of one JSON object, each by name into a typed destination, and rejects keys
// nobody asked for. Errors name "<source>: <path>.<key>".
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string source, std::string path)
      : j_(j), source_(std::move(source)), path_(std::move(path)) {}

  Status check_object() const {
    if (j_.is_object()) return ok_status();
    return invalid_argument(source_ + ": " + (path_.empty() ? "the config" : path_) +
                            " must be an object");
  }
  std::string where(const std::string& key) const {
    return source_ + ": " + (path_.empty() ? key : path_ + "." + key);
  }
  bool has(const std::string& key) {
    known_[key] = true;
    return j_.contains(key) && !j_.at(key).is_null();
  }
  const json& at(const std::string& key) const { return j_.at(key); }

  Status str(const std::string& key, std::string* out) {
    if (!has(key)) return ok_status();
    if (!j_.at(key).is_string()) return invalid_argument(where(key) + ": must be a string");
    *out = j_.at(key).get<std::string>();
    return ok_status();
  }
  Status num(const std::string& key, double* out, double lo, double hi) {
    if (!has(key)) return ok_status();
    if (!j_.at(key).is_number()) return invalid_argument(where(key) + ": must be a number");
    const double v = j_.at(key).get<double>();
    if (!std::isfinite(v) || v < lo || v > hi) {
      std::ostringstream msg;
      msg << where(key) << ": " << v << " is outside [" << lo << ", " << hi << "]";
      return invalid_argument(msg.str());
    }
    *out = v;
    return ok_status();
  }
  Status integer(const std::string& key, int64_t* out, int64_t lo, int64_t hi) {
    if (!has(key)) return ok_status();
    if (!j_.at(key).is_number_integer()) {
      return invalid_argument(where(key) + ": must be an integer");
    }
    const int64_t v = j_.at(key).get<int64_t>();
    if (v < lo || v > hi) {
      return invalid_argument(where(key) + ": " + std::to_string(v) + " is outside [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *out = v;
    return ok_status();
  }
  Status boolean(const std::string& key, bool* out) {
    if (!has(key)) return ok_status();
    if (!j_.at(key).is_boolean()) return invalid_argument(where(key) + ": must be true or false");
    *out = j_.at(key).get<bool>();
    return ok_status();
  }
  Status unsigned_int(const std::string& key, uint64_t* out) {
    int64_t v = static_cast<int64_t>(*out);
    VILA_RETURN_IF_ERROR(integer(key, &v, 0, INT64_MAX));
    *out = static_cast<uint64_t>(v);
    return ok_status();
  }
  Status strings(const std::string& key, std::vector<std::string>* out) {
    if (!has(key)) return ok_status();
    const json& a = j_.at(key);
    if (a.is_string()) {
      out->push_back(a.get<std::string>());
      return ok_status();
    }
    if (!a.is_array()) return invalid_argument(where(key) + ": must be a list of strings");
    for (const json& e : a) {
      if (!e.is_string()) return invalid_argument(where(key) + ": must be a list of strings");
      out->push_back(e.get<std::string>());
    }
    return ok_status();
  }
  // A nested object; `fn` reads it. Absent: nothing.
  Status object(const std::string& key, const std::function<Status(ObjectReader&)>& fn) {
    if (!has(key)) return ok_status();
    ObjectReader sub(j_.at(key), source_, path_.empty() ? key : path_ + "." + key);
    VILA_RETURN_IF_ERROR(sub.check_object());
    VILA_RETURN_IF_ERROR(fn(sub));
    return sub.finish();
  }
  // Every key of the object was read by someone.
  Status finish() const {
    for (const auto& [key, value] : j_.items()) {
      if (!known_.contains(key)) return invalid_argument(where(key) + ": unknown field");
    }
    return ok_status();
  }

 private:
  const json& j_;
  std::string source_;
  std::string path_;
  std::map<std::string, bool> known_;
};

Status one_of(const std::string& value, std::initializer_list<const char*> allowed,
              const std::string& where) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return ok_status();
    list += list.empty() ? a : std::string(", ") + a;
  }
  return invalid_argument(where + ": '" + value + "' is not one of " + list);
}

constexpr int64_t kMaxCount = int64_t{1} << 40;

}  // namespace

StatusOr<TrainConfig> train_config_from_json(const json& j, const std::string& source) {
  TrainConfig c;
  c.source = source;
  ObjectReader r(j, source, "");
  VILA_RETURN_IF_ERROR(r.check_object());
  VILA_RETURN_IF_ERROR(r.object("model", [&](ObjectReader& m) -> Status {
    VILA_RETURN_IF_ERROR(m.str("preset", &c.model_preset));
    VILA_RETURN_IF_ERROR(m.str("init_from", &c.init_from));
    if (m.has("overrides")) {
      if (!m.at("overrides").is_object()) {
        return invalid_argument(m.where("overrides") + ": must be an object");
      }
      c.model_overrides = m.at("overrides");
    }
    return ok_status();
  }));
  VILA_RETURN_IF_ERROR(r.object("tokenizer", [&](ObjectReader& t) -> Status {
    VILA_RETURN_IF_ERROR(t.str("path", &c.tokenizer));
    return t.integer("vocab_size", &c.tokenizer_vocab, 260, 1 << 20);
  }));
  VILA_RETURN_IF_ERROR(r.object("data", [&](ObjectReader& d) -> Status {
    VILA_RETURN_IF_ERROR(d.object("fashion", [&](ObjectReader& f) -> Status {
      VILA_RETURN_IF_ERROR(f.integer("caption", &c.fashion_caption, 0, kMaxCount));
      VILA_RETURN_IF_ERROR(f.integer("question", &c.fashion_question, 0, kMaxCount));
      VILA_RETURN_IF_ERROR(f.integer("compare", &c.fashion_compare, 0, kMaxCount));
      return f.integer("few_shot", &c.fashion_few_shot, 0, kMaxCount);
    }));
    if (d.has("jsonl")) {
      const json& list = d.at("jsonl");
      if (!list.is_array()) return invalid_argument(d.where("jsonl") + ": must be a list");
      for (size_t i = 0; i < list.size(); ++i) {
        JsonlSource s;
        ObjectReader e(list[i], source, "data.jsonl[" + std::to_string(i) + "]");
        VILA_RETURN_IF_ERROR(e.check_object());
        VILA_RETURN_IF_ERROR(e.str("path", &s.path));
        VILA_RETURN_IF_ERROR(e.str("format", &s.format));
        VILA_RETURN_IF_ERROR(e.str("image_root", &s.image_root));
        VILA_RETURN_IF_ERROR(e.finish());
        if (s.path.empty()) return invalid_argument(e.where("path") + ": is required");
        VILA_RETURN_IF_ERROR(one_of(s.format, {"llava", "openai", "mmc4"}, e.where("format")));
        c.jsonl.push_back(s);
      }
    }
    VILA_RETURN_IF_ERROR(d.str("text", &c.text));
    VILA_RETURN_IF_ERROR(d.integer("text_samples", &c.text_samples, 0, kMaxCount));
    return d.unsigned_int("seed", &c.data_seed);
  }));
  std::string stage = train_stage_name(c.stage);
  VILA_RETURN_IF_ERROR(r.str("stage", &stage));
  auto parsed_stage = parse_train_stage(stage);
  if (!parsed_stage.ok())
    return invalid_argument(r.where("stage") + ": " + parsed_stage.status().message());
  c.stage = *parsed_stage;
  VILA_RETURN_IF_ERROR(r.strings("freeze", &c.freeze));
  VILA_RETURN_IF_ERROR(r.strings("unfreeze", &c.unfreeze));
  for (const auto* list : {&c.freeze, &c.unfreeze}) {
    for (const std::string& name : *list) {
      auto m = parse_param_module(name);
      if (!m.ok()) {
        return invalid_argument(r.where(list == &c.freeze ? "freeze" : "unfreeze") + ": " +
                                m.status().message());
      }
    }
  }
  VILA_RETURN_IF_ERROR(r.object("optimizer", [&](ObjectReader& o) -> Status {
    VILA_RETURN_IF_ERROR(o.num("lr", &c.lr, 0, 10));
    VILA_RETURN_IF_ERROR(o.num("beta1", &c.beta1, 0, 0.999999));
    VILA_RETURN_IF_ERROR(o.num("beta2", &c.beta2, 0, 0.999999999));
    VILA_RETURN_IF_ERROR(o.num("eps", &c.eps, 0, 1));
    VILA_RETURN_IF_ERROR(o.num("weight_decay", &c.weight_decay, 0, 10));
    VILA_RETURN_IF_ERROR(o.str("state_format", &c.state_format));
    return one_of(c.state_format, {"f32", "bf16", "i8_block"}, o.where("state_format"));
  }));
  if (c.lr <= 0) return invalid_argument(r.where("optimizer.lr") + ": must be > 0");
  VILA_RETURN_IF_ERROR(r.object("schedule", [&](ObjectReader& s) -> Status {
    VILA_RETURN_IF_ERROR(s.str("name", &c.schedule));
    VILA_RETURN_IF_ERROR(one_of(c.schedule, {"cosine", "linear", "constant"}, s.where("name")));
    VILA_RETURN_IF_ERROR(s.num("warmup_ratio", &c.warmup_ratio, 0, 1));
    return s.num("min_lr_ratio", &c.min_lr_ratio, 0, 1);
  }));
  VILA_RETURN_IF_ERROR(r.integer("steps", &c.steps, 0, kMaxCount));
  VILA_RETURN_IF_ERROR(r.num("minutes", &c.minutes, 0, 1e6));
  if (c.steps == 0 && c.minutes == 0) {
    return invalid_argument(source + ": give steps or minutes (or both)");
  }
  VILA_RETURN_IF_ERROR(r.integer("batch_tokens", &c.batch_tokens, 16, 1 << 24));
  VILA_RETURN_IF_ERROR(r.integer("grad_accum", &c.grad_accum, 1, 1 << 16));
  VILA_RETURN_IF_ERROR(r.num("clip_grad_norm", &c.clip_grad_norm, 0, 1e9));
  VILA_RETURN_IF_ERROR(r.str("precision", &c.precision));
  VILA_RETURN_IF_ERROR(one_of(c.precision, {"fp32", "bf16"}, r.where("precision")));
  VILA_RETURN_IF_ERROR(r.unsigned_int("seed", &c.seed));
  VILA_RETURN_IF_ERROR(r.str("device", &c.device));
  VILA_RETURN_IF_ERROR(one_of(c.device, {"cpu", "cuda"}, r.where("device")));
  VILA_RETURN_IF_ERROR(r.boolean("deterministic", &c.deterministic));
  VILA_RETURN_IF_ERROR(r.object("checkpoint", [&](ObjectReader& k) -> Status {
    VILA_RETURN_IF_ERROR(k.integer("every", &c.checkpoint_every, 0, kMaxCount));
    VILA_RETURN_IF_ERROR(k.integer("keep", &c.checkpoint_keep, 1, 1000));
    VILA_RETURN_IF_ERROR(k.str("on_nan", &c.on_nan));
    return one_of(c.on_nan, {"stop", "skip"}, k.where("on_nan"));
  }));
  VILA_RETURN_IF_ERROR(r.object("eval", [&](ObjectReader& e) -> Status {
    VILA_RETURN_IF_ERROR(e.integer("every", &c.eval_every, 0, kMaxCount));
    VILA_RETURN_IF_ERROR(e.integer("samples", &c.eval_samples, 0, 10000));
    return e.integer("examples", &c.eval_examples, 0, 100);
  }));
  VILA_RETURN_IF_ERROR(r.str("output", &c.output));
  if (c.output.empty()) return invalid_argument(r.where("output") + ": must not be empty");
  VILA_RETURN_IF_ERROR(r.finish());
  if (c.fashion_caption + c.fashion_question + c.fashion_compare + c.fashion_few_shot == 0 &&
      c.jsonl.empty() && c.text.empty()) {
    return invalid_argument(source + ": data: no source (fashion, jsonl or text)");
  }
  VILA_RETURN_IF_ERROR(c.trainable_modules().status());
  return c;
}

json TrainConfig::to_json() const {
  json j;
  j["model"] = {{"preset", model_preset}};
  if (!init_from.empty()) j["model"]["init_from"] = init_from;
  if (model_overrides.is_object()) j["model"]["overrides"] = model_overrides;
  j["tokenizer"] = {{"path", tokenizer}, {"vocab_size", tokenizer_vocab}};
  json data;
  data["fashion"] = {{"caption", fashion_caption},
                     {"question", fashion_question},
                     {"compare", fashion_compare},
                     {"few_shot", fashion_few_shot}};
  data["jsonl"] = json::array();
  for (const JsonlSource& s : jsonl) {
    data["jsonl"].push_back({{"path", s.path}, {"format", s.format}, {"image_root", s.image_root}});
  }
  data["text"] = text;
  data["text_samples"] = text_samples;
  data["seed"] = data_seed;
  j["data"] = data;
  j["stage"] = train_stage_name(stage);
  j["freeze"] = freeze;
  j["unfreeze"] = unfreeze;
  j["optimizer"] = {{"lr", lr},
                    {"beta1", beta1},
                    {"beta2", beta2},
                    {"eps", eps},
                    {"weight_decay", weight_decay},
                    {"state_format", state_format}};
  j["schedule"] = {
      {"name", schedule}, {"warmup_ratio", warmup_ratio}, {"min_lr_ratio", min_lr_ratio}};
  j["steps"] = steps;
  j["minutes"] = minutes;
  j["batch_tokens"] = batch_tokens;
  j["grad_accum"] = grad_accum;
  j["clip_grad_norm"] = clip_grad_norm;
  j["precision"] = precision;
  j["seed"] = seed;
  j["device"] = device;
  j["deterministic"] = deterministic;
  j["checkpoint"] = {{"every", checkpoint_every}, {"keep", checkpoint_keep}, {"on_nan", on_nan}};
  j["eval"] = {{"every", eval_every}, {"samples", eval_samples}, {"examples", eval_examples}};
  j["output"] = output;
  return j;
}

namespace {

json yaml_scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  // Integers, then floats (YAML 1.2 core schema, decimal forms).
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end && *end == '\0') return static_cast<int64_t>(i);
  errno = 0;
  const double d = std::strtod(s.c_str(), &end);
  if (errno == 0 && end && *end == '\0' && s.find_first_of("0123456789") != std::string::npos) {
    return d;
  }
  return s;
}

json yaml_node_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return yaml_scalar(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const YAML::Node& e : n) a.push_back(yaml_node_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_node_to_json(kv.second);
      return o;
    }
  }
  return nullptr;
}

}  // namespace

StatusOr<json> yaml_to_json(const std::string& text, const std::string& source) {
  // yaml-cpp reports errors by exception; they stop here and become a Status.
  try {
    return yaml_node_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return invalid_argument(source + ":" + std::to_string(e.mark.line + 1) +
                            ": malformed YAML: " + e.msg);
  }
}

StatusOr<TrainConfig> load_train_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path + ": cannot open the training config");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const bool yaml = path.size() >= 5 && (path.ends_with(".yaml") || path.ends_with(".yml"));
  json j;
  if (yaml) {
    VILA_ASSIGN_OR_RETURN(j, yaml_to_json(text, path));
  } else {
    j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return invalid_argument(path + ": malformed JSON");
  }
  return train_config_from_json(j, path);
}

}  // namespace vila::train
