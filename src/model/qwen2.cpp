// Qwen2 (Qwen2ForCausalLM, also Qwen2.5): Llama layout with a bias on q/k/v_proj only.
// Reference: transformers models/qwen2 (Qwen2Config, Qwen2Attention, Qwen2MLP, Qwen2RMSNorm).
#include <string>

#include "model/arch.h"

namespace vila {

namespace {

StatusOr<LlmConfig> qwen2_load_hparams(const JsonFile& config) {
  VILA_ASSIGN_OR_RETURN(
      LlmConfig c, load_llama_family_hparams(config, qwen2_arch_info(), {/*max_position=*/32768}));
  // Sliding-window attention (off in every released Qwen2/2.5 config) is not implemented.
  VILA_ASSIGN_OR_RETURN(bool sliding,
                        json_bool_or(config, config.json, "use_sliding_window", false));
  if (sliding) {
    return unimplemented(
        config.path + ": field 'use_sliding_window' = true is not supported (full attention only)");
  }
  c.qkv_bias = true;  // Qwen2Attention: q/k/v_proj bias=True, o_proj bias=False
  c.o_bias = false;
  c.mlp_bias = false;
  return c;
}

}  // namespace

const LlmArchInfo& qwen2_arch_info() {
  static const LlmArchInfo info = {
      LlmArch::kQwen2,       "qwen2", "Qwen2ForCausalLM", "qwen2", &qwen2_load_hparams,
      kHfDecoderTensorNames,
  };
  return info;
}

}  // namespace vila
