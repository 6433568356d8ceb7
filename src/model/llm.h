// LanguageModel: a Llama-family decoder (Qwen2, Llama) on the CPU, fp32 activations, weights read
// in their checkpoint dtype (f32/bf16/f16) straight from the mmapped safetensors.
//
// Dimensions: T tokens of a chunk, C hidden, H heads, Hkv kv heads, D head dim, F intermediate,
// V vocab, L layers, S cache positions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "core/tensor.h"
#include "format/safetensors.h"
#include "model/arch.h"
#include "model/llm_config.h"
#include "ops/cpu/matmul.h"
#include "runtime/kv_cache.h"

namespace vila {

// Views into the checkpoint mapping; nothing is copied.
struct LlmLayerWeights {
  TensorView attn_norm;    // (C)
  cpu::LinearWeight q;     // (H*D, C)   bias (H*D) for Qwen2
  cpu::LinearWeight k;     // (Hkv*D, C) bias (Hkv*D) for Qwen2
  cpu::LinearWeight v;     // (Hkv*D, C) bias (Hkv*D) for Qwen2
  cpu::LinearWeight o;     // (C, H*D)
  TensorView mlp_norm;     // (C)
  cpu::LinearWeight gate;  // (F, C)
  cpu::LinearWeight up;    // (F, C)
  cpu::LinearWeight down;  // (C, F)
};

struct LlmWeights {
  TensorView token_embd;                // (V, C)
  std::vector<LlmLayerWeights> layers;  // L entries
  TensorView output_norm;               // (C)
  cpu::LinearWeight output;  // (V, C): lm_head, or token_embd when the embeddings are tied
};

// Called with every named intermediate during forward ("attn_norm", "q", "attn_out", "ffn_out",
// "l_out", "result_norm", ...), layer index or -1; for dumping and diffing activations.
using LlmDebugTap = std::function<void(const char* name, int layer, const TensorView& value)>;

// Argument checks shared by every backend's forward(): n > 0, embeds set, 0 <= n_logits <= n,
// logits set when n_logits > 0.
Status check_forward_args(const float* embeds, int64_t n, const float* logits, int64_t n_logits);

class LanguageModel {
 public:
  // llm_dir holds config.json + model.safetensors or model.safetensors.index.json with shards.
  // Validates every tensor's presence, shape and dtype up front, naming the tensor and file.
  static StatusOr<std::unique_ptr<LanguageModel>> load(const std::string& llm_dir);

  const LlmConfig& config() const { return config_; }
  const LlmWeights& weights() const { return weights_; }
  // Parameters used by the model (a tied embedding counts once).
  int64_t parameter_count() const;

  // out (n, C) fp32 = embed_tokens[ids]. InvalidArgument if an id is outside [0, V).
  Status embed(const int32_t* ids, int64_t n, float* out) const;

  // Runs n new positions with input embeddings `embeds` (n, C) at positions cache.length() ..
  // cache.length() + n - 1, appends their K/V to the cache, and writes the logits of the last
  // n_logits positions (0 <= n_logits <= n) to logits (n_logits, V). OutOfRange if the cache
  // would overflow (the cache is then unchanged). Long inputs run in chunks of max_chunk()
  // tokens, so scratch memory stays bounded. Not thread-safe: one forward at a time per model.
  Status forward(const float* embeds, int64_t n, KvCache& cache, float* logits, int64_t n_logits);

  // A cache with room for max_seq positions (negative counts as 0), shaped for this model.
  KvCache make_cache(int64_t max_seq) const;

  int64_t max_chunk() const { return max_chunk_; }
  void set_max_chunk(int64_t tokens) { max_chunk_ = tokens > 0 ? tokens : 1; }
  void set_debug_tap(LlmDebugTap tap) { tap_ = std::move(tap); }
  // Bytes of scratch activations currently reserved.
  size_t scratch_bytes() const { return scratch_.bytes_reserved(); }

 private:
  // Activation buffers for chunks of up to `tokens` positions, from scratch_.
  struct Activations {
    int64_t tokens = 0;
    float* x = nullptr;            // (T, C)    residual stream
    float* xn = nullptr;           // (T, C)    normed block input, then block output
    float* q = nullptr;            // (T, H*D)  queries
    float* attn = nullptr;         // (T, H*D)  attention output before o_proj
    float* gate = nullptr;         // (T, F)
    float* up = nullptr;           // (T, F)
    float* rope_cos = nullptr;     // (T, D/2)
    float* rope_sin = nullptr;     // (T, D/2)
    int64_t* positions = nullptr;  // (T)
  };

  LanguageModel() = default;
  Status bind_weights(const LlmArchInfo& arch);
  void ensure_activations(int64_t tokens);
  // One chunk of T tokens; logits of chunk rows [first_logit, T) go to `logits`.
  Status forward_chunk(const float* embeds, int64_t t_count, KvCache& cache, float* logits,
                       int64_t first_logit);
  Status attention_block(int layer, int64_t t_count, KvCache& cache);
  Status mlp_block(int layer, int64_t t_count);
  void tap(const char* name, int layer, float* data, Shape shape) const;

  LlmConfig config_;
  std::unique_ptr<Checkpoint> checkpoint_;  // owns the mappings the weights point into
  LlmWeights weights_;
  Arena scratch_{"llm_activations"};
  Activations act_;
  int64_t max_chunk_ = 512;
  LlmDebugTap tap_;
};

}  // namespace vila
