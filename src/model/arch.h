// LLM architecture registry. Adding an architecture = one LlmArch value, one <arch>.cpp defining
// its LlmArchInfo (hparam loader + tensor-name table), one line in the table in arch.cpp.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "format/json_config.h"
#include "model/llm_config.h"

namespace vila {

// HF tensor names. Per-layer names are layer_prefix + <layer index> + "." + the role name; linear
// roles get ".weight" / ".bias" appended.
struct LlmTensorNames {
  const char* token_embd;    // "model.embed_tokens.weight"       (V, C)
  const char* output_norm;   // "model.norm.weight"               (C)
  const char* output;        // "lm_head.weight"                  (V, C), absent when tied
  const char* layer_prefix;  // "model.layers."
  const char* attn_norm;     // "input_layernorm.weight"          (C)
  const char* attn_q;        // "self_attn.q_proj"                (H*D, C)
  const char* attn_k;        // "self_attn.k_proj"                (Hkv*D, C)
  const char* attn_v;        // "self_attn.v_proj"                (Hkv*D, C)
  const char* attn_o;        // "self_attn.o_proj"                (C, H*D)
  const char* ffn_norm;      // "post_attention_layernorm.weight" (C)
  const char* ffn_gate;      // "mlp.gate_proj"                   (F, C)
  const char* ffn_up;        // "mlp.up_proj"                     (F, C)
  const char* ffn_down;      // "mlp.down_proj"                   (C, F)
};

// The tensor names of Hugging Face's Llama-family decoders (Qwen2ForCausalLM, LlamaForCausalLM).
inline constexpr LlmTensorNames kHfDecoderTensorNames = {
    "model.embed_tokens.weight",
    "model.norm.weight",
    "lm_head.weight",
    "model.layers.",
    "input_layernorm.weight",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "post_attention_layernorm.weight",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
};

struct LlmArchInfo {
  LlmArch arch;
  const char* name;             // short name: "qwen2"
  const char* hf_architecture;  // config.json architectures[0]: "Qwen2ForCausalLM"
  const char* hf_model_type;    // config.json model_type: "qwen2"
  // Reads the hyperparameters from config.json (weight_dtype is left for the loader).
  StatusOr<LlmConfig> (*load_hparams)(const JsonFile& config);
  LlmTensorNames tensors;
};

// Every registered architecture, in table order.
const std::vector<const LlmArchInfo*>& llm_archs();
const LlmArchInfo& llm_arch_info(LlmArch arch);
// Picks the architecture from architectures[0] (or model_type when architectures is absent).
// Unimplemented "<path>: unknown architecture 'Foo' (supported: Qwen2ForCausalLM, ...)".
StatusOr<const LlmArchInfo*> llm_arch_from_config(const JsonFile& config);

// The per-architecture descriptors (qwen2.cpp, llama.cpp).
const LlmArchInfo& qwen2_arch_info();
const LlmArchInfo& llama_arch_info();

// Shared by the Llama-family loaders: the fields Qwen2 and Llama read the same way.
struct LlamaFamilyDefaults {
  int64_t max_position;  // max_position_embeddings default (Qwen2Config 32768, LlamaConfig 2048)
};
StatusOr<LlmConfig> load_llama_family_hparams(const JsonFile& config, const LlmArchInfo& arch,
                                              const LlamaFamilyDefaults& defaults);

}  // namespace vila
