// Llama-family decoder forward on the CPU (Qwen2, Llama), in the llm.c style: one readable
// sequence of op calls per block, shape comments on every tensor.
//
// Dimension legend
//   T  tokens in the current chunk        C    hidden size
//   H  attention heads                    Hkv  key/value heads (GQA: H % Hkv == 0)
//   D  head dim                           F    MLP intermediate size
//   V  vocabulary                         S    KV cache positions, p0 = cache length before the
//   chunk
//
// Per layer (HF Qwen2DecoderLayer / LlamaDecoderLayer, fp32):
//   xn = rms_norm(x);  q, k, v = xn·Wqᵀ+bq, xn·Wkᵀ+bk, xn·Wvᵀ+bv;  rope(q), rope(k)
//   x += o_proj(attention(q, k_cache, v_cache))
//   xn = rms_norm(x);  x += down(silu(gate(xn)) * up(xn))
// then logits = lm_head(rms_norm(x)) for the requested last rows.
#include "model/llm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/mapped_file.h"
#include "model/weights.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/embedding.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/op_check.h"
#include "ops/cpu/rope.h"
#include "ops/cpu/vec.h"

namespace vila {

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

StatusOr<std::unique_ptr<LanguageModel>> LanguageModel::load(const std::string& llm_dir) {
  VILA_ASSIGN_OR_RETURN(JsonFile config_file, load_json_file(path_join(llm_dir, "config.json")));
  VILA_ASSIGN_OR_RETURN(const LlmArchInfo* arch, llm_arch_from_config(config_file));
  std::unique_ptr<LanguageModel> model(new LanguageModel());
  VILA_ASSIGN_OR_RETURN(model->config_, arch->load_hparams(config_file));
  VILA_ASSIGN_OR_RETURN(model->checkpoint_, Checkpoint::open_dir(llm_dir));
  VILA_RETURN_IF_ERROR(model->bind_weights(*arch));
  return model;
}

Status LanguageModel::bind_weights(const LlmArchInfo& arch) {
  const LlmConfig& c = config_;
  const LlmTensorNames& names = arch.tensors;
  const Checkpoint& ckpt = *checkpoint_;

  auto tensor = [&](const std::string& name, const Shape& shape) {
    return checkpoint_weight(ckpt, name, shape);
  };
  auto linear = [&](const std::string& base, int64_t out_features, int64_t in_features,
                    bool has_bias) {
    return checkpoint_linear(ckpt, base, out_features, in_features, has_bias);
  };

  const int64_t C = c.hidden, H = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim;
  const int64_t F = c.intermediate, V = c.vocab_size;
  VILA_ASSIGN_OR_RETURN(weights_.token_embd, tensor(names.token_embd, {V, C}));
  weights_.layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = names.layer_prefix + std::to_string(l) + ".";
    LlmLayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    VILA_ASSIGN_OR_RETURN(w.attn_norm, tensor(p + names.attn_norm, {C}));
    VILA_ASSIGN_OR_RETURN(w.q, linear(p + names.attn_q, H * D, C, c.qkv_bias));
    VILA_ASSIGN_OR_RETURN(w.k, linear(p + names.attn_k, Hkv * D, C, c.qkv_bias));
    VILA_ASSIGN_OR_RETURN(w.v, linear(p + names.attn_v, Hkv * D, C, c.qkv_bias));
    VILA_ASSIGN_OR_RETURN(w.o, linear(p + names.attn_o, C, H * D, c.o_bias));
    VILA_ASSIGN_OR_RETURN(w.mlp_norm, tensor(p + names.ffn_norm, {C}));
    VILA_ASSIGN_OR_RETURN(w.gate, linear(p + names.ffn_gate, F, C, c.mlp_bias));
    VILA_ASSIGN_OR_RETURN(w.up, linear(p + names.ffn_up, F, C, c.mlp_bias));
    VILA_ASSIGN_OR_RETURN(w.down, linear(p + names.ffn_down, C, F, c.mlp_bias));
  }
  VILA_ASSIGN_OR_RETURN(weights_.output_norm, tensor(names.output_norm, {C}));
  if (c.tie_embeddings) {
    weights_.output.weight = weights_.token_embd;  // lm_head.weight, if present, is ignored (HF)
  } else {
    VILA_ASSIGN_OR_RETURN(weights_.output.weight, tensor(names.output, {V, C}));
  }
  config_.weight_dtype = weights_.token_embd.dtype;
  return ok_status();
}

int64_t LanguageModel::parameter_count() const {
  auto linear_params = [](const cpu::LinearWeight& w) {
    return w.weight.numel() + (w.has_bias() ? w.bias.numel() : 0);
  };
  int64_t n = weights_.token_embd.numel() + weights_.output_norm.numel();
  if (!config_.tie_embeddings) n += linear_params(weights_.output);
  for (const LlmLayerWeights& w : weights_.layers) {
    n += w.attn_norm.numel() + w.mlp_norm.numel();
    for (const cpu::LinearWeight* lw : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) {
      n += linear_params(*lw);
    }
  }
  return n;
}

KvCache LanguageModel::make_cache(int64_t max_seq) const {
  return KvCache(config_.n_layers, max_seq, config_.n_kv_heads, config_.head_dim);
}

Status LanguageModel::embed(const int32_t* ids, int64_t n, float* out) const {
  if (n < 0) return invalid_argument("embed: n must be >= 0");
  if (n > 0 && out == nullptr) return invalid_argument("embed: out is null");
  return cpu::embedding(f32_view(out, {n, config_.hidden}), weights_.token_embd, ids, n);
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

void LanguageModel::ensure_activations(int64_t tokens) {
  if (tokens <= act_.tokens) return;
  const LlmConfig& c = config_;
  const int64_t T = tokens, C = c.hidden, H = c.n_heads, D = c.head_dim, F = c.intermediate;
  scratch_.reset();
  auto floats = [&](int64_t count) {
    return static_cast<float*>(scratch_.alloc(static_cast<size_t>(count) * sizeof(float)));
  };
  act_.tokens = T;
  act_.x = floats(T * C);
  act_.xn = floats(T * C);
  act_.q = floats(T * H * D);
  act_.attn = floats(T * H * D);
  act_.gate = floats(T * F);
  act_.up = floats(T * F);
  act_.rope_cos = floats(T * D / 2);
  act_.rope_sin = floats(T * D / 2);
  act_.positions = static_cast<int64_t*>(scratch_.alloc(static_cast<size_t>(T) * sizeof(int64_t)));
}

void LanguageModel::tap(const char* name, int layer, float* data, Shape shape) const {
  if (tap_) tap_(name, layer, f32_view(data, shape));
}

Status check_forward_args(const float* embeds, int64_t n, const float* logits, int64_t n_logits) {
  if (n <= 0) return invalid_argument("forward: n must be positive, got " + std::to_string(n));
  if (embeds == nullptr) return invalid_argument("forward: embeds is null");
  if (n_logits < 0 || n_logits > n) {
    return invalid_argument("forward: n_logits " + std::to_string(n_logits) + " outside [0, " +
                            std::to_string(n) + "]");
  }
  if (n_logits > 0 && logits == nullptr) return invalid_argument("forward: logits is null");
  return ok_status();
}

Status LanguageModel::forward(const float* embeds, int64_t n, KvCache& cache, float* logits,
                              int64_t n_logits) {
  const LlmConfig& c = config_;
  VILA_RETURN_IF_ERROR(check_forward_args(embeds, n, logits, n_logits));
  if (cache.n_layers() != c.n_layers || cache.n_kv_heads() != c.n_kv_heads ||
      cache.head_dim() != c.head_dim) {
    return invalid_argument("forward: KV cache (layers " + std::to_string(cache.n_layers()) +
                            ", kv heads " + std::to_string(cache.n_kv_heads()) + ", head_dim " +
                            std::to_string(cache.head_dim()) + ") does not fit the model");
  }
  VILA_RETURN_IF_ERROR(cache.check_room(n).with_context("forward"));

  const int64_t first_logit_row = n - n_logits;  // rows [first_logit_row, n) produce logits
  for (int64_t start = 0; start < n; start += max_chunk_) {
    const int64_t t_count = std::min(max_chunk_, n - start);
    const int64_t first = std::clamp(first_logit_row - start, int64_t{0}, t_count);
    float* chunk_logits =
        first < t_count ? logits + (start + first - first_logit_row) * c.vocab_size : nullptr;
    VILA_RETURN_IF_ERROR(
        forward_chunk(embeds + start * c.hidden, t_count, cache, chunk_logits, first));
  }
  return ok_status();
}

Status LanguageModel::forward_chunk(const float* embeds, int64_t t_count, KvCache& cache,
                                    float* logits, int64_t first_logit) {
  const LlmConfig& c = config_;
  const int64_t T = t_count, C = c.hidden, D = c.head_dim, V = c.vocab_size;
  ensure_activations(T);
  const int64_t p0 = cache.length();

  std::copy(embeds, embeds + T * C, act_.x);  // x (T, C)
  for (int64_t t = 0; t < T; ++t) act_.positions[t] = p0 + t;
  VILA_RETURN_IF_ERROR(cpu::rope_cos_sin(f32_view(act_.rope_cos, {T, D / 2}),
                                         f32_view(act_.rope_sin, {T, D / 2}), act_.positions,
                                         c.rope_theta));
  tap("inp_embd", -1, act_.x, {T, C});

  for (int l = 0; l < static_cast<int>(c.n_layers); ++l) {
    VILA_RETURN_IF_ERROR(attention_block(l, T, cache));
    VILA_RETURN_IF_ERROR(mlp_block(l, T));
    tap("l_out", l, act_.x, {T, C});
  }
  cache.commit(T);

  if (logits != nullptr && first_logit < T) {
    const int64_t rows = T - first_logit;
    const TensorView x_rows = f32_view(act_.x + first_logit * C, {rows, C});    // (rows, C)
    const TensorView xn_rows = f32_view(act_.xn + first_logit * C, {rows, C});  // (rows, C)
    VILA_RETURN_IF_ERROR(
        cpu::rms_norm(xn_rows, x_rows, weights_.output_norm, static_cast<float>(c.rms_eps)));
    tap("result_norm", -1, xn_rows.f32(), {rows, C});
    VILA_RETURN_IF_ERROR(cpu::linear(f32_view(logits, {rows, V}), xn_rows, weights_.output));
    tap("result_output", -1, logits, {rows, V});
  }
  return ok_status();
}

Status LanguageModel::attention_block(int layer, int64_t t_count, KvCache& cache) {
  const LlmConfig& c = config_;
  const LlmLayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
  const int64_t T = t_count, C = c.hidden, H = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim;
  const int64_t p0 = cache.length();
  const auto eps = static_cast<float>(c.rms_eps);
  const auto scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));

  const TensorView x = f32_view(act_.x, {T, C});            // (T, C) residual
  const TensorView xn = f32_view(act_.xn, {T, C});          // (T, C)
  const TensorView q = f32_view(act_.q, {T, H * D});        // (T, H*D)
  const TensorView attn = f32_view(act_.attn, {T, H * D});  // (T, H*D)
  const TensorView k_cache = cache.k(layer);                // (S, Hkv, D)
  const TensorView v_cache = cache.v(layer);                // (S, Hkv, D)
  float* k_new = k_cache.f32() + p0 * Hkv * D;              // (T, Hkv*D) rows p0 .. p0+T-1
  float* v_new = v_cache.f32() + p0 * Hkv * D;              // (T, Hkv*D)
  const TensorView cos = f32_view(act_.rope_cos, {T, D / 2});
  const TensorView sin = f32_view(act_.rope_sin, {T, D / 2});

  VILA_RETURN_IF_ERROR(cpu::rms_norm(xn, x, w.attn_norm, eps));
  tap("attn_norm", layer, xn.f32(), {T, C});
  VILA_RETURN_IF_ERROR(cpu::linear(q, xn, w.q));
  VILA_RETURN_IF_ERROR(cpu::linear(f32_view(k_new, {T, Hkv * D}), xn, w.k));
  VILA_RETURN_IF_ERROR(cpu::linear(f32_view(v_new, {T, Hkv * D}), xn, w.v));
  VILA_RETURN_IF_ERROR(cpu::rope_apply(f32_view(q.f32(), {T, H, D}), cos, sin));
  VILA_RETURN_IF_ERROR(cpu::rope_apply(f32_view(k_new, {T, Hkv, D}), cos, sin));
  tap("q", layer, q.f32(), {T, H, D});
  tap("k", layer, k_new, {T, Hkv, D});
  tap("v", layer, v_new, {T, Hkv, D});
  VILA_RETURN_IF_ERROR(cpu::attention_causal(
      f32_view(attn.f32(), {T, H, D}), f32_view(q.f32(), {T, H, D}), k_cache, v_cache, p0, scale));
  tap("attn", layer, attn.f32(), {T, H, D});
  VILA_RETURN_IF_ERROR(cpu::linear(xn, attn, w.o));  // xn (T, C) = o_proj(attn)
  tap("attn_out", layer, xn.f32(), {T, C});
  cpu::vec_axpy_f32(x.f32(), 1.0f, xn.f32(), T * C);  // x += attn_out
  return ok_status();
}

Status LanguageModel::mlp_block(int layer, int64_t t_count) {
  const LlmConfig& c = config_;
  const LlmLayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
  const int64_t T = t_count, C = c.hidden, F = c.intermediate;
  const auto eps = static_cast<float>(c.rms_eps);

  const TensorView x = f32_view(act_.x, {T, C});        // (T, C) residual
  const TensorView xn = f32_view(act_.xn, {T, C});      // (T, C)
  const TensorView gate = f32_view(act_.gate, {T, F});  // (T, F)
  const TensorView up = f32_view(act_.up, {T, F});      // (T, F)

  VILA_RETURN_IF_ERROR(cpu::rms_norm(xn, x, w.mlp_norm, eps));
  tap("ffn_norm", layer, xn.f32(), {T, C});
  VILA_RETURN_IF_ERROR(cpu::linear(gate, xn, w.gate));
  VILA_RETURN_IF_ERROR(cpu::linear(up, xn, w.up));
  VILA_RETURN_IF_ERROR(cpu::silu_mul(gate, gate, up));  // gate = silu(gate) * up
  VILA_RETURN_IF_ERROR(cpu::linear(xn, gate, w.down));  // xn (T, C) = down(gate)
  tap("ffn_out", layer, xn.f32(), {T, C});
  cpu::vec_axpy_f32(x.f32(), 1.0f, xn.f32(), T * C);  // x += ffn_out
  return ok_status();
}

}  // namespace vila
