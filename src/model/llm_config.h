// Hyperparameters of a decoder-only language model (the HF config.json fields we use).
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace vila {

enum class LlmArch { kQwen2, kLlama };

struct LlmConfig {
  LlmArch arch = LlmArch::kQwen2;
  std::string arch_name;        // HF architectures[0], e.g. "Qwen2ForCausalLM"
  int64_t hidden = 0;           // C   hidden_size
  int64_t n_layers = 0;         // L   num_hidden_layers
  int64_t n_heads = 0;          // H   num_attention_heads
  int64_t n_kv_heads = 0;       // Hkv num_key_value_heads (default H)
  int64_t head_dim = 0;         // D   head_dim (default C / H)
  int64_t intermediate = 0;     // F   intermediate_size
  int64_t vocab_size = 0;       // V   vocab_size
  int64_t max_position = 0;     //     max_position_embeddings (informational: not enforced)
  double rms_eps = 1e-6;        //     rms_norm_eps
  double rope_theta = 10000.0;  //     rope_theta
  bool tie_embeddings = false;  //     tie_word_embeddings: lm_head = embed_tokens
  bool qkv_bias = false;        //     q/k/v_proj have a bias (Qwen2: always; Llama: attention_bias)
  bool o_bias = false;          //     o_proj has a bias (Llama attention_bias)
  bool mlp_bias = false;        //     gate/up/down_proj have a bias (Llama mlp_bias)
  DType weight_dtype = DType::kF32;  // dtype of embed_tokens in the checkpoint (set by the loader)
};

}  // namespace vila
