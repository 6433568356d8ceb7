// VlmConfig: validation, presets, JSON round trip, projector stages and the parameter list.
#include "train/model/vlm_config.h"

#include <set>
#include <utility>

#include "model/projector.h"

namespace vila::train {

namespace {

using nlohmann::json;

Status positive(const char* field, int64_t v) {
  if (v <= 0) {
    return invalid_argument(std::string("VlmConfig: ") + field + " must be positive, got " +
                            std::to_string(v));
  }
  return ok_status();
}

// Reads obj[key] into *out when present; InvalidArgument naming "<section>.<key>" on a bad type.
template <typename T>
Status read_field(const json& obj, const std::string& section, const char* key, T* out,
                  const std::string& label, std::set<std::string>* seen) {
  seen->insert(key);
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return ok_status();
  const std::string field = section + "." + key;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return invalid_argument(label + ": field '" + field + "' must be bool");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) {
      return invalid_argument(label + ": field '" + field + "' must be a string");
    }
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) {
      return invalid_argument(label + ": field '" + field + "' must be an integer");
    }
  } else {
    if (!it->is_number()) {
      return invalid_argument(label + ": field '" + field + "' must be a number");
    }
  }
  *out = it->get<T>();
  return ok_status();
}

Status no_unknown_keys(const json& obj, const std::string& section,
                       const std::set<std::string>& seen, const std::string& label) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (seen.count(it.key()) == 0) {
      return invalid_argument(label + ": unknown field '" + section + "." + it.key() + "'");
    }
  }
  return ok_status();
}

Status section_object(const json& j, const char* key, const std::string& label, const json** out) {
  static const json kEmpty = json::object();
  *out = &kEmpty;
  auto it = j.find(key);
  if (it == j.end()) return ok_status();
  if (!it->is_object()) {
    return invalid_argument(label + ": field '" + key + "' must be an object");
  }
  *out = &*it;
  return ok_status();
}

}  // namespace

Status VlmConfig::validate() const {
  const VisionTowerConfig& v = vision;
  VILA_RETURN_IF_ERROR(positive("vision_tower.image_size", v.image_size));
  VILA_RETURN_IF_ERROR(positive("vision_tower.patch_size", v.patch_size));
  VILA_RETURN_IF_ERROR(positive("vision_tower.channels", v.channels));
  VILA_RETURN_IF_ERROR(positive("vision_tower.hidden", v.hidden));
  VILA_RETURN_IF_ERROR(positive("vision_tower.layers", v.layers));
  VILA_RETURN_IF_ERROR(positive("vision_tower.heads", v.heads));
  VILA_RETURN_IF_ERROR(positive("vision_tower.intermediate", v.intermediate));
  if (v.image_size % v.patch_size != 0) {
    return invalid_argument("VlmConfig: vision_tower.image_size " + std::to_string(v.image_size) +
                            " is not a multiple of vision_tower.patch_size " +
                            std::to_string(v.patch_size));
  }
  if (v.hidden % v.heads != 0) {
    return invalid_argument("VlmConfig: vision_tower.hidden " + std::to_string(v.hidden) +
                            " is not a multiple of vision_tower.heads " + std::to_string(v.heads));
  }
  if (v.layers_run() < 0 || v.layers_run() > v.layers) {
    return invalid_argument("VlmConfig: vision_tower.select_layer " +
                            std::to_string(v.select_layer) + " is outside the " +
                            std::to_string(v.layers + 1) + " hidden states");
  }
  if (!(v.layer_norm_eps > 0)) {
    return invalid_argument("VlmConfig: vision_tower.layer_norm_eps must be positive");
  }
  const LanguageConfig& l = llm;
  VILA_RETURN_IF_ERROR(positive("llm.hidden", l.hidden));
  VILA_RETURN_IF_ERROR(positive("llm.layers", l.layers));
  VILA_RETURN_IF_ERROR(positive("llm.heads", l.heads));
  VILA_RETURN_IF_ERROR(positive("llm.kv_heads", l.kv_heads));
  VILA_RETURN_IF_ERROR(positive("llm.intermediate", l.intermediate));
  VILA_RETURN_IF_ERROR(positive("llm.vocab", l.vocab));
  VILA_RETURN_IF_ERROR(positive("llm.max_position", l.max_position));
  if (l.hidden % l.heads != 0 || l.head_dim() % 2 != 0) {
    return invalid_argument("VlmConfig: llm.hidden " + std::to_string(l.hidden) +
                            " must be llm.heads " + std::to_string(l.heads) +
                            " times an even head dim");
  }
  if (l.heads % l.kv_heads != 0) {
    return invalid_argument("VlmConfig: llm.heads " + std::to_string(l.heads) +
                            " is not a multiple of llm.kv_heads " + std::to_string(l.kv_heads));
  }
  if (!(l.rope_theta > 0)) return invalid_argument("VlmConfig: llm.rope_theta must be positive");
  if (!(l.rms_eps > 0)) return invalid_argument("VlmConfig: llm.rms_eps must be positive");
  VILA_ASSIGN_OR_RETURN(std::vector<ProjStage> stages, projector_stages(*this));
  if (tokens_per_image() <= 0) {
    return invalid_argument("VlmConfig: projector.type '" + projector.type +
                            "' gives no tokens for a " + std::to_string(v.grid()) + "x" +
                            std::to_string(v.grid()) + " patch grid");
  }
  return ok_status();
}

int64_t VlmConfig::tokens_per_image() const {
  auto stages = projector_stages(*this);
  if (!stages.ok()) return -1;
  int64_t side = vision.grid();
  for (const ProjStage& s : *stages) {
    if (s.kind == ProjStageKind::kSpatialToChannel) side = (side + s.factor - 1) / s.factor;
  }
  return side * side;
}

int64_t VlmConfig::parameter_count() const {
  auto specs = param_specs(*this);
  if (!specs.ok()) return -1;
  int64_t n = 0;
  for (const ParamSpec& s : *specs) n += s.shape.numel();
  return n;
}

json VlmConfig::to_json() const {
  json j;
  j["vision_tower"] = {{"image_size", vision.image_size},
                       {"patch_size", vision.patch_size},
                       {"channels", vision.channels},
                       {"hidden", vision.hidden},
                       {"layers", vision.layers},
                       {"heads", vision.heads},
                       {"intermediate", vision.intermediate},
                       {"layer_norm_eps", vision.layer_norm_eps},
                       {"select_layer", vision.select_layer}};
  j["projector"] = {{"type", projector.type}};
  j["llm"] = {{"hidden", llm.hidden},
              {"layers", llm.layers},
              {"heads", llm.heads},
              {"kv_heads", llm.kv_heads},
              {"intermediate", llm.intermediate},
              {"vocab", llm.vocab},
              {"max_position", llm.max_position},
              {"rope_theta", llm.rope_theta},
              {"rms_eps", llm.rms_eps},
              {"tie_word_embeddings", llm.tie_word_embeddings},
              {"qkv_bias", llm.qkv_bias},
              {"bos_token_id", llm.bos_token_id},
              {"eos_token_id", llm.eos_token_id},
              {"pad_token_id", llm.pad_token_id}};
  return j;
}

StatusOr<VlmConfig> VlmConfig::from_json(const json& j, const std::string& label) {
  if (!j.is_object()) return invalid_argument(label + ": expected a JSON object");
  VlmConfig c;
  const json *vj = nullptr, *pj = nullptr, *lj = nullptr;
  VILA_RETURN_IF_ERROR(section_object(j, "vision_tower", label, &vj));
  VILA_RETURN_IF_ERROR(section_object(j, "projector", label, &pj));
  VILA_RETURN_IF_ERROR(section_object(j, "llm", label, &lj));
  std::set<std::string> top{"vision_tower", "projector", "llm"};
  VILA_RETURN_IF_ERROR(no_unknown_keys(j, "", top, label));

  std::set<std::string> seen;
  const std::string vs = "vision_tower";
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "image_size", &c.vision.image_size, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "patch_size", &c.vision.patch_size, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "channels", &c.vision.channels, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "hidden", &c.vision.hidden, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "layers", &c.vision.layers, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "heads", &c.vision.heads, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "intermediate", &c.vision.intermediate, label, &seen));
  VILA_RETURN_IF_ERROR(
      read_field(*vj, vs, "layer_norm_eps", &c.vision.layer_norm_eps, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*vj, vs, "select_layer", &c.vision.select_layer, label, &seen));
  VILA_RETURN_IF_ERROR(no_unknown_keys(*vj, vs, seen, label));

  seen.clear();
  VILA_RETURN_IF_ERROR(read_field(*pj, "projector", "type", &c.projector.type, label, &seen));
  VILA_RETURN_IF_ERROR(no_unknown_keys(*pj, "projector", seen, label));

  seen.clear();
  const std::string ls = "llm";
  LanguageConfig& l = c.llm;
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "hidden", &l.hidden, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "layers", &l.layers, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "heads", &l.heads, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "kv_heads", &l.kv_heads, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "intermediate", &l.intermediate, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "vocab", &l.vocab, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "max_position", &l.max_position, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "rope_theta", &l.rope_theta, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "rms_eps", &l.rms_eps, label, &seen));
  VILA_RETURN_IF_ERROR(
      read_field(*lj, ls, "tie_word_embeddings", &l.tie_word_embeddings, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "qkv_bias", &l.qkv_bias, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "bos_token_id", &l.bos_token_id, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "eos_token_id", &l.eos_token_id, label, &seen));
  VILA_RETURN_IF_ERROR(read_field(*lj, ls, "pad_token_id", &l.pad_token_id, label, &seen));
  VILA_RETURN_IF_ERROR(no_unknown_keys(*lj, ls, seen, label));

  Status st = c.validate();
  if (!st.ok()) return invalid_argument(label + ": " + st.message());
  return c;
}

StatusOr<VlmConfig> vlm_preset(const std::string& name) {
  VlmConfig c;
  if (name == "tiny") {
    c.vision = {/*image_size=*/8, /*patch_size=*/2,    /*channels=*/3, /*hidden=*/8,
                /*layers=*/2,
                /*heads=*/2,      /*intermediate=*/16, 1e-6,           -2};
    c.llm.hidden = 16;
    c.llm.layers = 2;
    c.llm.heads = 4;
    c.llm.kv_heads = 2;
    c.llm.intermediate = 32;
    c.llm.vocab = 64;
    c.llm.max_position = 512;
  } else if (name == "fashion") {
    c.vision = {
        /*image_size=*/28, /*patch_size=*/7,     /*channels=*/3, /*hidden=*/64,
        /*layers=*/2,
        /*heads=*/4,       /*intermediate=*/128, 1e-6,           -2};
    c.llm.hidden = 128;
    c.llm.layers = 2;
    c.llm.heads = 4;
    c.llm.kv_heads = 2;
    c.llm.intermediate = 256;
    c.llm.vocab = 512;
    c.llm.max_position = 2048;
  } else {
    return invalid_argument("vlm_preset: unknown preset '" + name + "' (expected tiny, fashion)");
  }
  VILA_RETURN_IF_ERROR(c.validate());
  return c;
}

StatusOr<std::vector<ProjStage>> projector_stages(const VlmConfig& config) {
  const int64_t C = config.vision.hidden, H = config.llm.hidden;
  const std::string& type = config.projector.type;
  // The inference side's table (model/projector.h) is the one definition of every type.
  VILA_ASSIGN_OR_RETURN(std::vector<ProjectorStageSpec> specs,
                        projector_stage_specs(type, C, H, "VlmConfig: projector.type"));
  std::vector<ProjStage> out;
  int64_t width = C;
  for (const ProjectorStageSpec& spec : specs) {
    ProjStage s;
    s.name = "layers." + std::to_string(out.size());
    s.in_dim = width;
    switch (spec.kind) {
      case ProjectorStageKind::kSpatialToChannel:
        s.kind = ProjStageKind::kSpatialToChannel;
        s.factor = spec.arg;
        width *= spec.arg * spec.arg;
        break;
      case ProjectorStageKind::kLayerNorm:
        s.kind = ProjStageKind::kLayerNorm;
        break;
      case ProjectorStageKind::kLinear:
        s.kind = ProjStageKind::kLinear;
        width = spec.arg;
        break;
      case ProjectorStageKind::kGelu:
        s.kind = ProjStageKind::kGelu;
        break;
    }
    s.out_dim = width;
    out.push_back(s);
  }
  if (type == "linear" && out.size() == 1) out.back().name = "layers";  // nn.Linear as `layers`
  return out;
}

StatusOr<std::vector<ParamSpec>> param_specs(const VlmConfig& config) {
  std::vector<ParamSpec> out;
  const auto kW = ParamRole::kWeight, kB = ParamRole::kBias, kN = ParamRole::kNorm,
             kE = ParamRole::kEmbedding;
  // Vision tower: every layer of the checkpoint is registered, also those after select_layer
  // (they never run, so their gradients stay zero), and post_layernorm, so the folder loads as a
  // whole SiglipVisionModel.
  const VisionTowerConfig& v = config.vision;
  const ParamModule vt = ParamModule::kVisionTower;
  const std::string emb = "vision_model.embeddings.";
  out.push_back({vt, emb + "patch_embedding.weight", kW,
                 Shape{v.hidden, v.channels, v.patch_size, v.patch_size}});
  out.push_back({vt, emb + "patch_embedding.bias", kB, Shape{v.hidden}});
  out.push_back({vt, emb + "position_embedding.weight", kE, Shape{v.patches(), v.hidden}});
  for (int64_t i = 0; i < v.layers; ++i) {
    const std::string p = "vision_model.encoder.layers." + std::to_string(i) + ".";
    out.push_back({vt, p + "layer_norm1.weight", kN, Shape{v.hidden}});
    out.push_back({vt, p + "layer_norm1.bias", kN, Shape{v.hidden}});
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      out.push_back({vt, p + "self_attn." + proj + ".weight", kW, Shape{v.hidden, v.hidden}});
      out.push_back({vt, p + "self_attn." + proj + ".bias", kB, Shape{v.hidden}});
    }
    out.push_back({vt, p + "layer_norm2.weight", kN, Shape{v.hidden}});
    out.push_back({vt, p + "layer_norm2.bias", kN, Shape{v.hidden}});
    out.push_back({vt, p + "mlp.fc1.weight", kW, Shape{v.intermediate, v.hidden}});
    out.push_back({vt, p + "mlp.fc1.bias", kB, Shape{v.intermediate}});
    out.push_back({vt, p + "mlp.fc2.weight", kW, Shape{v.hidden, v.intermediate}});
    out.push_back({vt, p + "mlp.fc2.bias", kB, Shape{v.hidden}});
  }
  // SiglipVisionModel's final LayerNorm: part of the checkpoint, never on VILA's path (it reads
  // hidden_states[select_layer]), so its gradient is zero.
  out.push_back({vt, "vision_model.post_layernorm.weight", kN, Shape{v.hidden}});
  out.push_back({vt, "vision_model.post_layernorm.bias", kN, Shape{v.hidden}});
  // Projector.
  VILA_ASSIGN_OR_RETURN(std::vector<ProjStage> stages, projector_stages(config));
  const ParamModule pm = ParamModule::kProjector;
  for (const ProjStage& s : stages) {
    if (s.kind == ProjStageKind::kLayerNorm) {
      out.push_back({pm, s.name + ".weight", kN, Shape{s.in_dim}});
      out.push_back({pm, s.name + ".bias", kN, Shape{s.in_dim}});
    } else if (s.kind == ProjStageKind::kLinear) {
      out.push_back({pm, s.name + ".weight", kW, Shape{s.out_dim, s.in_dim}});
      out.push_back({pm, s.name + ".bias", kB, Shape{s.out_dim}});
    }
  }
  // LLM (Qwen2ForCausalLM names).
  const LanguageConfig& l = config.llm;
  const ParamModule lm = ParamModule::kLlm;
  const int64_t qd = l.heads * l.head_dim(), kvd = l.kv_heads * l.head_dim();
  out.push_back({lm, "model.embed_tokens.weight", kE, Shape{l.vocab, l.hidden}});
  for (int64_t i = 0; i < l.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({lm, p + "input_layernorm.weight", kN, Shape{l.hidden}});
    const std::pair<const char*, int64_t> qkv[] = {
        {"q_proj", qd}, {"k_proj", kvd}, {"v_proj", kvd}};
    for (const auto& [proj, n] : qkv) {
      out.push_back({lm, p + "self_attn." + proj + ".weight", kW, Shape{n, l.hidden}});
      if (l.qkv_bias) out.push_back({lm, p + "self_attn." + proj + ".bias", kB, Shape{n}});
    }
    out.push_back({lm, p + "self_attn.o_proj.weight", kW, Shape{l.hidden, qd}});
    out.push_back({lm, p + "post_attention_layernorm.weight", kN, Shape{l.hidden}});
    out.push_back({lm, p + "mlp.gate_proj.weight", kW, Shape{l.intermediate, l.hidden}});
    out.push_back({lm, p + "mlp.up_proj.weight", kW, Shape{l.intermediate, l.hidden}});
    out.push_back({lm, p + "mlp.down_proj.weight", kW, Shape{l.hidden, l.intermediate}});
  }
  out.push_back({lm, "model.norm.weight", kN, Shape{l.hidden}});
  if (!l.tie_word_embeddings) {
    out.push_back({lm, "lm_head.weight", kW, Shape{l.vocab, l.hidden}});
  }
  return out;
}

Status register_params(const VlmConfig& config, ParamStore& store) {
  VILA_ASSIGN_OR_RETURN(std::vector<ParamSpec> specs, param_specs(config));
  for (const ParamSpec& s : specs) {
    Param* p = store.find(s.module, s.name);
    if (p == nullptr) {
      VILA_ASSIGN_OR_RETURN(p, store.add(s.module, s.name, s.role, s.shape));
    } else if (p->shape != s.shape) {
      return invalid_argument("register_params: parameter " + p->full_name() + " has shape " +
                              p->shape.to_string() + ", the config needs " + s.shape.to_string());
    }
  }
  return ok_status();
}

}  // namespace vila::train
