#include "model/arch.h"

#include <string>

namespace vila {

// The registry: one line per architecture.
const std::vector<const LlmArchInfo*>& llm_archs() {
  static const std::vector<const LlmArchInfo*> archs = {
      &qwen2_arch_info(),
      &llama_arch_info(),
  };
  return archs;
}

const LlmArchInfo& llm_arch_info(LlmArch arch) {
  for (const LlmArchInfo* info : llm_archs()) {
    if (info->arch == arch) return *info;
  }
  return *llm_archs().front();  // unreachable: every LlmArch value is registered
}

StatusOr<const LlmArchInfo*> llm_arch_from_config(const JsonFile& config) {
  const nlohmann::json& j = config.json;
  if (!j.is_object()) return invalid_argument(config.path + ": expected a JSON object");
  std::string supported;
  for (const LlmArchInfo* info : llm_archs()) {
    supported += std::string(supported.empty() ? "" : ", ") + info->hf_architecture;
  }

  auto arch_it = j.find("architectures");
  if (arch_it != j.end() && !arch_it->is_null()) {
    if (!arch_it->is_array() || arch_it->empty() || !(*arch_it)[0].is_string()) {
      return invalid_argument(config.path +
                              ": field 'architectures' must be a non-empty list of strings");
    }
    const std::string name = (*arch_it)[0].get<std::string>();
    for (const LlmArchInfo* info : llm_archs()) {
      if (name == info->hf_architecture) return info;
    }
    return unimplemented(config.path + ": unknown architecture '" + name +
                         "' (supported: " + supported + ")");
  }
  VILA_ASSIGN_OR_RETURN(std::string model_type, json_string(config, j, "model_type"));
  std::string supported_types;
  for (const LlmArchInfo* info : llm_archs()) {
    if (model_type == info->hf_model_type) return info;
    supported_types += std::string(supported_types.empty() ? "" : ", ") + info->hf_model_type;
  }
  return unimplemented(config.path + ": unknown model_type '" + model_type +
                       "' (supported: " + supported_types + ")");
}

namespace {

// RoPE scaling variants (linear, dynamic, yarn, llama3, ...) are not implemented: the field must be
// absent, null, or name the default rope type.
Status check_no_rope_scaling(const JsonFile& config, const char* field) {
  auto it = config.json.find(field);
  if (it == config.json.end() || it->is_null()) return ok_status();
  if (it->is_object()) {
    std::string type = "default";
    if (it->contains("rope_type") && (*it)["rope_type"].is_string()) {
      type = (*it)["rope_type"].get<std::string>();
    } else if (it->contains("type") && (*it)["type"].is_string()) {
      type = (*it)["type"].get<std::string>();
    }
    if (type == "default") return ok_status();
  }
  return unimplemented(config.path + ": field '" + field + "' = " + it->dump() +
                       " is not supported (only unscaled RoPE is implemented)");
}

Status positive(const JsonFile& config, const char* field, int64_t value) {
  if (value <= 0) {
    return invalid_argument(config.path + ": field '" + field + "' must be positive, got " +
                            std::to_string(value));
  }
  return ok_status();
}

}  // namespace

StatusOr<LlmConfig> load_llama_family_hparams(const JsonFile& config, const LlmArchInfo& arch,
                                              const LlamaFamilyDefaults& defaults) {
  const nlohmann::json& j = config.json;
  LlmConfig c;
  c.arch = arch.arch;
  c.arch_name = arch.hf_architecture;
  VILA_ASSIGN_OR_RETURN(c.hidden, json_int(config, j, "hidden_size"));
  VILA_ASSIGN_OR_RETURN(c.n_layers, json_int(config, j, "num_hidden_layers"));
  VILA_ASSIGN_OR_RETURN(c.n_heads, json_int(config, j, "num_attention_heads"));
  VILA_ASSIGN_OR_RETURN(c.intermediate, json_int(config, j, "intermediate_size"));
  VILA_ASSIGN_OR_RETURN(c.vocab_size, json_int(config, j, "vocab_size"));
  VILA_RETURN_IF_ERROR(positive(config, "hidden_size", c.hidden));
  VILA_RETURN_IF_ERROR(positive(config, "num_hidden_layers", c.n_layers));
  VILA_RETURN_IF_ERROR(positive(config, "num_attention_heads", c.n_heads));
  VILA_RETURN_IF_ERROR(positive(config, "intermediate_size", c.intermediate));
  VILA_RETURN_IF_ERROR(positive(config, "vocab_size", c.vocab_size));
  VILA_ASSIGN_OR_RETURN(c.n_kv_heads, json_int_or(config, j, "num_key_value_heads", c.n_heads));
  VILA_ASSIGN_OR_RETURN(c.head_dim, json_int_or(config, j, "head_dim", c.hidden / c.n_heads));
  VILA_RETURN_IF_ERROR(positive(config, "num_key_value_heads", c.n_kv_heads));
  VILA_RETURN_IF_ERROR(positive(config, "head_dim", c.head_dim));
  if (c.n_heads % c.n_kv_heads != 0) {
    return invalid_argument(config.path + ": num_attention_heads " + std::to_string(c.n_heads) +
                            " is not a multiple of num_key_value_heads " +
                            std::to_string(c.n_kv_heads));
  }
  if (c.head_dim % 2 != 0) {
    return invalid_argument(config.path + ": head_dim " + std::to_string(c.head_dim) +
                            " must be even for RoPE");
  }
  VILA_ASSIGN_OR_RETURN(c.max_position,
                        json_int_or(config, j, "max_position_embeddings", defaults.max_position));
  VILA_ASSIGN_OR_RETURN(c.rms_eps, json_number_or(config, j, "rms_norm_eps", 1e-6));
  VILA_ASSIGN_OR_RETURN(c.tie_embeddings, json_bool_or(config, j, "tie_word_embeddings", false));

  VILA_ASSIGN_OR_RETURN(std::string act, json_string_or(config, j, "hidden_act", "silu"));
  if (act != "silu") {
    return unimplemented(config.path + ": field 'hidden_act' = '" + act +
                         "' is not supported (supported: silu)");
  }

  // RoPE: rope_theta at the top level (transformers 4.x) or inside rope_parameters (5.x).
  VILA_RETURN_IF_ERROR(check_no_rope_scaling(config, "rope_scaling"));
  VILA_RETURN_IF_ERROR(check_no_rope_scaling(config, "rope_parameters"));
  double theta = 10000.0;
  auto params = j.find("rope_parameters");
  if (params != j.end() && params->is_object()) {
    VILA_ASSIGN_OR_RETURN(theta, json_number_or(config, *params, "rope_theta", theta));
  }
  VILA_ASSIGN_OR_RETURN(c.rope_theta, json_number_or(config, j, "rope_theta", theta));
  if (!(c.rope_theta > 0.0)) {
    return invalid_argument(config.path + ": field 'rope_theta' must be positive");
  }
  return c;
}

}  // namespace vila
