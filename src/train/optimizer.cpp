// AdamW with block-wise stored states, gradient norm / clipping / scaling, and the optimizer state
// (de)serialization. Math and names in optimizer.h.
#include "train/optimizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

namespace vila::train {
namespace {

using nlohmann::json;

constexpr const char* kStepSuffix = ".step";
constexpr const char* kExpAvgSuffix = ".exp_avg";
constexpr const char* kExpAvgSqSuffix = ".exp_avg_sq";
constexpr const char* kScaleSuffix = ".scale";
constexpr int kFormatVersion = 1;

std::string num(double x) { return json(x).dump(); }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The parameter name a state tensor belongs to, or "" if `name` is not a state tensor name.
std::string state_owner(const std::string& name) {
  static const std::array<std::string, 5> kSuffixes = {std::string(kExpAvgSqSuffix) + kScaleSuffix,
                                                       std::string(kExpAvgSuffix) + kScaleSuffix,
                                                       kExpAvgSqSuffix, kExpAvgSuffix, kStepSuffix};
  for (const std::string& suffix : kSuffixes) {
    if (ends_with(name, suffix) && name.size() > suffix.size()) {
      return name.substr(0, name.size() - suffix.size());
    }
  }
  return "";
}

Status add_state_tensor(SafetensorsWriter& writer, const std::string& name, const StateTensor& t,
                        const Shape& shape) {
  VILA_RETURN_IF_ERROR(
      writer.add(name, t.code_dtype(), shape, t.code_bytes().data(), t.code_bytes().size()));
  if (!t.scales().empty()) {
    const Shape scale_shape{static_cast<int64_t>(t.scales().size())};
    VILA_RETURN_IF_ERROR(writer.add(name + kScaleSuffix, DType::kF32, scale_shape,
                                    t.scales().data(), t.scales().size() * sizeof(float)));
  }
  return ok_status();
}

// Where load() finds tensors: a SafetensorsFile or a Checkpoint.
struct EntrySource {
  std::string label;  // file or folder, for messages
  std::vector<std::string> names;
  std::function<const SafetensorsEntry*(const std::string&)> find;
};

StatusOr<const SafetensorsEntry*> get_entry(const EntrySource& src, const std::string& name,
                                            DType dtype, const Shape& shape) {
  const SafetensorsEntry* e = src.find(name);
  if (e == nullptr) {
    return not_found(src.label + ": missing optimizer state tensor '" + name + "'");
  }
  if (e->dtype != dtype || e->shape != shape) {
    return invalid_argument(src.label + ": optimizer state tensor '" + name + "' is " +
                            dtype_name(e->dtype) + " " + e->shape.to_string() + ", expected " +
                            dtype_name(dtype) + " " + shape.to_string());
  }
  return e;
}

Status restore_state_tensor(const EntrySource& src, const std::string& name, const Shape& shape,
                            StateTensor& t) {
  VILA_ASSIGN_OR_RETURN(const SafetensorsEntry* codes, get_entry(src, name, t.code_dtype(), shape));
  const float* scales = nullptr;
  size_t n_scales = 0;
  std::vector<float> scale_buf;
  if (!t.scales().empty()) {
    const Shape scale_shape{static_cast<int64_t>(t.scales().size())};
    VILA_ASSIGN_OR_RETURN(const SafetensorsEntry* s,
                          get_entry(src, name + kScaleSuffix, DType::kF32, scale_shape));
    scale_buf.resize(t.scales().size());
    std::memcpy(scale_buf.data(), s->data, scale_buf.size() * sizeof(float));  // may be unaligned
    scales = scale_buf.data();
    n_scales = scale_buf.size();
  }
  Status st = t.restore(codes->data, codes->nbytes, scales, n_scales);
  return st.ok() ? st : st.with_context(src.label + ": " + name);
}

Status check_config_matches(const AdamWConfig& stored, const AdamWConfig& ours,
                            const std::string& label) {
  auto mismatch = [&](const char* field, const std::string& a, const std::string& b) {
    return invalid_argument(label + ": optimizer " + field + " is " + a + " in the file but " + b +
                            " in the config");
  };
  if (stored.beta1 != ours.beta1) return mismatch("beta1", num(stored.beta1), num(ours.beta1));
  if (stored.beta2 != ours.beta2) return mismatch("beta2", num(stored.beta2), num(ours.beta2));
  if (stored.eps != ours.eps) return mismatch("eps", num(stored.eps), num(ours.eps));
  if (stored.weight_decay != ours.weight_decay) {
    return mismatch("weight_decay", num(stored.weight_decay), num(ours.weight_decay));
  }
  if (stored.exp_avg_format != ours.exp_avg_format) {
    return mismatch("exp_avg_format", state_format_name(stored.exp_avg_format),
                    state_format_name(ours.exp_avg_format));
  }
  if (stored.exp_avg_sq_format != ours.exp_avg_sq_format) {
    return mismatch("exp_avg_sq_format", state_format_name(stored.exp_avg_sq_format),
                    state_format_name(ours.exp_avg_sq_format));
  }
  return ok_status();
}

StatusOr<AdamWParamState> make_state(const AdamWConfig& config, const Shape& shape) {
  const int64_t numel = shape.numel();
  AdamWParamState s;
  s.shape = shape;
  VILA_ASSIGN_OR_RETURN(s.exp_avg,
                        StateTensor::create(config.exp_avg_format, MomentKind::kSigned, numel));
  VILA_ASSIGN_OR_RETURN(
      s.exp_avg_sq, StateTensor::create(config.exp_avg_sq_format, MomentKind::kNonNegative, numel));
  return s;
}

}  // namespace

// ---- config ----

std::string adamw_config_to_json(const AdamWConfig& config) {
  json j;
  j["type"] = "adamw";
  j["format_version"] = kFormatVersion;
  j["beta1"] = config.beta1;
  j["beta2"] = config.beta2;
  j["eps"] = config.eps;
  j["weight_decay"] = config.weight_decay;
  j["exp_avg_format"] = state_format_name(config.exp_avg_format);
  j["exp_avg_sq_format"] = state_format_name(config.exp_avg_sq_format);
  j["block_size"] = kStateBlock;
  return j.dump();
}

StatusOr<AdamWConfig> adamw_config_from_json(const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return invalid_argument("optimizer config: not a JSON object");
  }
  if (!j.contains("type") || !j["type"].is_string() || j["type"].get<std::string>() != "adamw") {
    return invalid_argument("optimizer config: field 'type' must be \"adamw\"");
  }
  if (!j.contains("block_size") || !j["block_size"].is_number_integer() ||
      j["block_size"].get<int64_t>() != kStateBlock) {
    return invalid_argument("optimizer config: field 'block_size' must be " +
                            std::to_string(kStateBlock));
  }
  AdamWConfig c;
  for (auto [field, dst] : {std::pair<const char*, double*>{"beta1", &c.beta1},
                            {"beta2", &c.beta2},
                            {"eps", &c.eps},
                            {"weight_decay", &c.weight_decay}}) {
    if (!j.contains(field) || !j[field].is_number()) {
      return invalid_argument(std::string("optimizer config: field '") + field +
                              "' missing or not a number");
    }
    *dst = j[field].get<double>();
  }
  for (auto [field, dst] :
       {std::pair<const char*, StateFormat*>{"exp_avg_format", &c.exp_avg_format},
        {"exp_avg_sq_format", &c.exp_avg_sq_format}}) {
    if (!j.contains(field) || !j[field].is_string()) {
      return invalid_argument(std::string("optimizer config: field '") + field +
                              "' missing or not a string");
    }
    StatusOr<StateFormat> f = parse_state_format(j[field].get<std::string>());
    if (!f.ok()) return f.status().with_context(std::string("optimizer config: ") + field);
    *dst = *f;
  }
  return c;
}

// ---- AdamW ----

StatusOr<AdamW> AdamW::create(const AdamWConfig& config) {
  auto in_unit = [](double x) { return std::isfinite(x) && x >= 0.0 && x < 1.0; };
  auto non_negative = [](double x) { return std::isfinite(x) && x >= 0.0; };
  if (!in_unit(config.beta1)) {
    return invalid_argument("adamw: beta1 must be in [0, 1), got " + num(config.beta1));
  }
  if (!in_unit(config.beta2)) {
    return invalid_argument("adamw: beta2 must be in [0, 1), got " + num(config.beta2));
  }
  if (!non_negative(config.eps)) {
    return invalid_argument("adamw: eps must be finite and >= 0, got " + num(config.eps));
  }
  if (!non_negative(config.weight_decay)) {
    return invalid_argument("adamw: weight_decay must be finite and >= 0, got " +
                            num(config.weight_decay));
  }
  Status st = check_state_format(config.exp_avg_format);
  if (!st.ok()) return st.with_context("adamw: exp_avg_format");
  st = check_state_format(config.exp_avg_sq_format);
  if (!st.ok()) return st.with_context("adamw: exp_avg_sq_format");
  AdamW opt;
  opt.config_ = config;
  return opt;
}

Status AdamW::step(ParamStore& params, double lr) {
  if (!(std::isfinite(lr) && lr >= 0.0)) {
    return invalid_argument("adamw: lr must be finite and >= 0, got " + num(lr));
  }
  // Python-float (double) scalars as PyTorch turns them into fp32 operands.
  const float decay_factor = static_cast<float>(1.0 - lr * config_.weight_decay);
  const float lerp_weight = static_cast<float>(1.0 - config_.beta1);
  const float beta2 = static_cast<float>(config_.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - config_.beta2);
  const float eps = static_cast<float>(config_.eps);
  const bool use_decay = config_.weight_decay != 0.0;

  std::array<float, kStateBlock> m{};
  std::array<float, kStateBlock> v{};
  for (Param* p : params.trainable()) {
    const std::string name = p->full_name();
    auto it = states_.find(name);
    if (it == states_.end()) {
      VILA_ASSIGN_OR_RETURN(AdamWParamState fresh, make_state(config_, p->shape));
      it = states_.emplace(name, std::move(fresh)).first;
    }
    AdamWParamState& s = it->second;
    if (s.shape != p->shape) {
      return invalid_argument("adamw: state of " + name + " has shape " + s.shape.to_string() +
                              ", the parameter " + p->shape.to_string());
    }
    s.step += 1;
    const double t = static_cast<double>(s.step);
    const double bias_correction1 = 1.0 - std::pow(config_.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(config_.beta2, t);
    const float neg_step_size = static_cast<float>(-(lr / bias_correction1));
    const float bc2_sqrt = static_cast<float>(std::pow(bias_correction2, 0.5));
    const bool decay = use_decay && p->decays();

    for (int64_t b = 0; b < s.exp_avg.num_blocks(); ++b) {
      const int64_t n = s.exp_avg.block_len(b);
      float* value = p->value.data() + b * kStateBlock;      // (n) fp32
      const float* grad = p->grad.data() + b * kStateBlock;  // (n) fp32
      s.exp_avg.decode_block(b, m.data());
      s.exp_avg_sq.decode_block(b, v.data());
      for (int64_t i = 0; i < n; ++i) {
        const float g = grad[i];
        float w = value[i];
        if (decay) w = w * decay_factor;
        m[i] = std::fma(lerp_weight, g - m[i], m[i]);
        v[i] = v[i] * beta2;
        v[i] = v[i] + (one_minus_beta2 * g) * g;
        const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        value[i] = w + (neg_step_size * m[i]) / denom;
      }
      s.exp_avg.encode_block(b, m.data());
      s.exp_avg_sq.encode_block(b, v.data());
    }
  }
  return ok_status();
}

const AdamWParamState* AdamW::state(const std::string& full_name) const {
  auto it = states_.find(full_name);
  return it == states_.end() ? nullptr : &it->second;
}

Status AdamW::set_state(const Param& param, int64_t step, const float* m, const float* v) {
  if (step < 0) return invalid_argument("AdamW::set_state: negative step for " + param.full_name());
  VILA_ASSIGN_OR_RETURN(AdamWParamState s, make_state(config_, param.shape));
  s.step = step;
  for (int64_t b = 0; b < s.exp_avg.num_blocks(); ++b) {
    s.exp_avg.encode_block(b, m + b * kStateBlock);
    s.exp_avg_sq.encode_block(b, v + b * kStateBlock);
  }
  states_.insert_or_assign(param.full_name(), std::move(s));
  return ok_status();
}

double AdamW::bytes_per_param() const {
  return state_bytes_per_value(config_.exp_avg_format) +
         state_bytes_per_value(config_.exp_avg_sq_format);
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (const auto& [name, s] : states_) {
    n += s.exp_avg.nbytes() + s.exp_avg_sq.nbytes() + static_cast<int64_t>(sizeof(s.step));
  }
  return n;
}

// ---- serialization ----

Status AdamW::save(SafetensorsWriter& writer) const {
  writer.set_metadata(kOptimizerMetadataKey, adamw_config_to_json(config_));
  for (const auto& [name, s] : states_) {
    const Shape step_shape{1};
    VILA_RETURN_IF_ERROR(
        writer.add(name + kStepSuffix, DType::kI64, step_shape, &s.step, sizeof(s.step)));
    VILA_RETURN_IF_ERROR(add_state_tensor(writer, name + kExpAvgSuffix, s.exp_avg, s.shape));
    VILA_RETURN_IF_ERROR(add_state_tensor(writer, name + kExpAvgSqSuffix, s.exp_avg_sq, s.shape));
  }
  return ok_status();
}

namespace {

// The states stored in `src`, checked against `params` and `config` (see AdamW::load).
StatusOr<std::map<std::string, AdamWParamState>> load_states(const EntrySource& src,
                                                             const ParamStore& params,
                                                             const AdamWConfig& config) {
  std::map<std::string, const Param*> by_name;
  for (const Param* p : params.all()) by_name[p->full_name()] = p;

  std::map<std::string, bool> owners;  // parameter name -> has a .step tensor
  for (const std::string& tensor : src.names) {
    const std::string owner = state_owner(tensor);
    if (owner.empty()) continue;  // not optimizer state (e.g. other trainer tensors)
    if (by_name.count(owner) == 0) {
      return invalid_argument(src.label + ": optimizer state for unknown parameter '" + owner +
                              "' (tensor '" + tensor + "')");
    }
    owners[owner] = owners[owner] || ends_with(tensor, kStepSuffix);
  }
  std::map<std::string, AdamWParamState> loaded;
  for (const auto& [owner, has_step] : owners) {
    if (!has_step) {
      return not_found(src.label + ": missing optimizer state tensor '" + owner + kStepSuffix +
                       "'");
    }
    const Param* p = by_name[owner];
    VILA_ASSIGN_OR_RETURN(AdamWParamState s, make_state(config, p->shape));
    VILA_ASSIGN_OR_RETURN(const SafetensorsEntry* step,
                          get_entry(src, owner + kStepSuffix, DType::kI64, Shape{1}));
    std::memcpy(&s.step, step->data, sizeof(s.step));
    if (s.step < 0) {
      return data_loss(src.label + ": optimizer state tensor '" + owner + kStepSuffix +
                       "' holds a negative step " + std::to_string(s.step));
    }
    VILA_RETURN_IF_ERROR(restore_state_tensor(src, owner + kExpAvgSuffix, p->shape, s.exp_avg));
    VILA_RETURN_IF_ERROR(
        restore_state_tensor(src, owner + kExpAvgSqSuffix, p->shape, s.exp_avg_sq));
    loaded.emplace(owner, std::move(s));
  }
  return loaded;
}

}  // namespace

Status AdamW::load(const SafetensorsFile& file, const ParamStore& params) {
  auto meta = file.metadata().find(kOptimizerMetadataKey);
  if (meta == file.metadata().end()) {
    return not_found(file.path() + ": no '" + kOptimizerMetadataKey + "' metadata");
  }
  StatusOr<AdamWConfig> stored = adamw_config_from_json(meta->second);
  if (!stored.ok()) return stored.status().with_context(file.path());
  VILA_RETURN_IF_ERROR(check_config_matches(*stored, config_, file.path()));
  EntrySource src;
  src.label = file.path();
  for (const auto& [name, entry] : file.entries()) src.names.push_back(name);
  src.find = [&file](const std::string& name) -> const SafetensorsEntry* {
    auto it = file.entries().find(name);
    return it == file.entries().end() ? nullptr : &it->second;
  };
  VILA_ASSIGN_OR_RETURN(states_, load_states(src, params, config_));
  return ok_status();
}

Status AdamW::load(const Checkpoint& checkpoint, const ParamStore& params) {
  EntrySource src;
  src.label = checkpoint.dir();
  src.names = checkpoint.names();
  src.find = [&checkpoint](const std::string& name) -> const SafetensorsEntry* {
    if (!checkpoint.has(name)) return nullptr;
    StatusOr<const SafetensorsEntry*> e = checkpoint.get(name);
    return e.ok() ? *e : nullptr;
  };
  VILA_ASSIGN_OR_RETURN(states_, load_states(src, params, config_));
  return ok_status();
}

// ---- gradient utilities ----

double global_grad_norm(ParamStore& params) {
  double sum = 0.0;
  for (const Param* p : params.trainable()) {
    for (const float g : p->grad) sum += static_cast<double>(g) * static_cast<double>(g);
  }
  return std::sqrt(sum);
}

StatusOr<GradClipResult> clip_grad_norm(ParamStore& params, double max_norm) {
  if (!(std::isfinite(max_norm) && max_norm > 0.0)) {
    return invalid_argument("clip_grad_norm: max_norm must be finite and > 0, got " +
                            num(max_norm));
  }
  GradClipResult r;
  r.norm = global_grad_norm(params);
  r.finite = std::isfinite(r.norm);
  if (!r.finite) return r;
  const double coef = max_norm / (r.norm + kClipEps);
  if (coef < 1.0) {
    r.clipped = true;
    r.scale = static_cast<float>(coef);
    scale_grads(params, r.scale);
  }
  return r;
}

void scale_grads(ParamStore& params, float factor) {
  for (Param* p : params.trainable()) {
    for (float& g : p->grad) g *= factor;
  }
}

}  // namespace vila::train
