// Llama (LlamaForCausalLM): pre-norm decoder, optional biases through attention_bias / mlp_bias.
// Reference: transformers models/llama (LlamaConfig, LlamaAttention, LlamaMLP, LlamaRMSNorm).
#include <string>

#include "model/arch.h"

namespace vila {

namespace {

StatusOr<LlmConfig> llama_load_hparams(const JsonFile& config) {
  VILA_ASSIGN_OR_RETURN(
      LlmConfig c, load_llama_family_hparams(config, llama_arch_info(), {/*max_position=*/2048}));
  // LlamaAttention: attention_bias applies to q, k, v and o_proj; LlamaMLP: mlp_bias to all three.
  VILA_ASSIGN_OR_RETURN(bool attention_bias,
                        json_bool_or(config, config.json, "attention_bias", false));
  VILA_ASSIGN_OR_RETURN(c.mlp_bias, json_bool_or(config, config.json, "mlp_bias", false));
  c.qkv_bias = attention_bias;
  c.o_bias = attention_bias;
  return c;
}

}  // namespace

const LlmArchInfo& llama_arch_info() {
  static const LlmArchInfo info = {
      LlmArch::kLlama,       "llama", "LlamaForCausalLM", "llama", &llama_load_hparams,
      kHfDecoderTensorNames,
  };
  return info;
}

}  // namespace vila
