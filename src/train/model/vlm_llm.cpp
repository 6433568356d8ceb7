// Qwen2 decoder forward / backward for training (see llm.h).
#include "train/model/vlm_llm.h"

#include <algorithm>
#include <cmath>

#include "train/activation.h"
#include "train/embedding.h"
#include "train/media_splice.h"
#include "train/packing.h"
#include "train/residual.h"

namespace vila::train {

Status LlmModel::bind(const LanguageConfig& config, ParamStore& store) {
  config_ = config;
  const ParamModule m = ParamModule::kLlm;
  const int64_t C = config.hidden, F = config.intermediate, V = config.vocab;
  const int64_t qd = config.heads * config.head_dim(), kvd = config.kv_heads * config.head_dim();
  VILA_ASSIGN_OR_RETURN(embed_, find_param(store, m, "model.embed_tokens.weight", {V, C}));
  VILA_ASSIGN_OR_RETURN(norm_, find_param(store, m, "model.norm.weight", {C}));
  lm_head_ = nullptr;
  if (!config.tie_word_embeddings) {
    VILA_ASSIGN_OR_RETURN(lm_head_, find_param(store, m, "lm_head.weight", {V, C}));
  }
  layers_.assign(static_cast<size_t>(config.layers), {});
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerParams& lp = layers_[l];
    VILA_ASSIGN_OR_RETURN(lp.ln1, find_param(store, m, pre + "input_layernorm.weight", {C}));
    VILA_ASSIGN_OR_RETURN(lp.ln2,
                          find_param(store, m, pre + "post_attention_layernorm.weight", {C}));
    auto lin = [&](const std::string& name, int64_t out, int64_t in, bool bias,
                   LinearRef* ref) -> Status {
      VILA_ASSIGN_OR_RETURN(ref->weight, find_param(store, m, pre + name + ".weight", {out, in}));
      ref->bias = nullptr;
      if (bias) {
        VILA_ASSIGN_OR_RETURN(ref->bias, find_param(store, m, pre + name + ".bias", {out}));
      }
      return ok_status();
    };
    VILA_RETURN_IF_ERROR(lin("self_attn.q_proj", qd, C, config.qkv_bias, &lp.q));
    VILA_RETURN_IF_ERROR(lin("self_attn.k_proj", kvd, C, config.qkv_bias, &lp.k));
    VILA_RETURN_IF_ERROR(lin("self_attn.v_proj", kvd, C, config.qkv_bias, &lp.v));
    VILA_RETURN_IF_ERROR(lin("self_attn.o_proj", C, qd, false, &lp.o));
    VILA_RETURN_IF_ERROR(lin("mlp.gate_proj", F, C, false, &lp.gate));
    VILA_RETURN_IF_ERROR(lin("mlp.up_proj", F, C, false, &lp.up));
    VILA_RETURN_IF_ERROR(lin("mlp.down_proj", C, F, false, &lp.down));
  }
  saved_.resize(layers_.size());
  return ok_status();
}

LinearRef LlmModel::lm_head() const { return {lm_head_ != nullptr ? lm_head_ : embed_, nullptr}; }

Status LlmModel::forward(const int32_t* ids, const int32_t* segments, int64_t t_count,
                         const float* feats, const int64_t* rows, int64_t n_rows,
                         const LinearPrecision& precision) {
  if (ids == nullptr || t_count <= 0) {
    return invalid_argument("llm forward: need at least one token, got " + std::to_string(t_count));
  }
  if (n_rows > 0 && (feats == nullptr || rows == nullptr)) {
    return invalid_argument("llm forward: " + std::to_string(n_rows) +
                            " media rows without features");
  }
  VILA_RETURN_IF_ERROR(check_segments(segments, t_count));
  if (t_count > config_.max_position) {
    return invalid_argument("llm forward: " + std::to_string(t_count) +
                            " tokens exceed max_position " + std::to_string(config_.max_position));
  }
  t_ = t_count;
  segments_ = segments;
  rows_ = rows;
  n_rows_ = n_rows;
  const int64_t T = t_count, C = config_.hidden, V = config_.vocab;
  // Media rows hold the image placeholder id, which the vocabulary need not cover: look up 0 there
  // (the row is overwritten by the splice, and its gradient never reaches the table).
  lookup_ids_.assign(ids, ids + T);
  for (int64_t i = 0; i < n_rows; ++i) {
    if (rows[i] < 0 || rows[i] >= T) {
      return invalid_argument("llm forward: media row " + std::to_string(rows[i]) +
                              " outside the " + std::to_string(T) + " tokens");
    }
    lookup_ids_[static_cast<size_t>(rows[i])] = 0;
  }
  std::vector<float>& x0 = saved_.empty() ? xf_ : saved_[0].x;
  VILA_RETURN_IF_ERROR(
      embedding_forward(buffer(x0, {T, C}), embed_->view(), lookup_ids_.data(), T));
  if (n_rows > 0) {
    VILA_RETURN_IF_ERROR(media_splice_forward(
        view(x0, {T, C}), f32_view(const_cast<float*>(feats), {n_rows, C}), rows, n_rows));
  }
  positions_.resize(static_cast<size_t>(T));
  VILA_RETURN_IF_ERROR(positions_from_segments(segments, T, positions_.data()));
  VILA_RETURN_IF_ERROR(
      rope_tables(&rope_, positions_.data(), T, config_.head_dim(), config_.rope_theta));
  for (size_t l = 0; l < saved_.size(); ++l) {
    VILA_RETURN_IF_ERROR(
        layer_forward(l, precision, l + 1 < saved_.size() ? saved_[l + 1].x : xf_));
  }
  VILA_RETURN_IF_ERROR(rms_norm_forward(buffer(xn_, {T, C}), view(xf_, {T, C}), norm_->view(),
                                        static_cast<float>(config_.rms_eps), &nf_));
  return linear_forward(buffer(logits_, {T, V}), view(xn_, {T, C}), lm_head().params(),
                        precision.forward);
}

Status LlmModel::layer_forward(size_t l, const LinearPrecision& precision,
                               std::vector<float>& x_out) {
  const LayerParams& lp = layers_[l];
  LayerSaved& s = saved_[l];
  const int64_t T = t_, C = config_.hidden, F = config_.intermediate;
  const int64_t H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim();
  const int64_t qd = H * D, kvd = Hkv * D;
  const auto eps = static_cast<float>(config_.rms_eps);
  const GemmPrecision& fw = precision.forward;
  const TensorView x = view(s.x, {T, C});
  // h1 = rms(x); q, k, v (+bias); rope(q, k)
  VILA_RETURN_IF_ERROR(rms_norm_forward(buffer(s.h1, {T, C}), x, lp.ln1->view(), eps, &s.n1));
  const TensorView h1 = view(s.h1, {T, C});
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.q, {T, qd}), h1, lp.q.params(), fw));
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.k, {T, kvd}), h1, lp.k.params(), fw));
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.v, {T, kvd}), h1, lp.v.params(), fw));
  const Shape qs{T, H, D}, ks{T, Hkv, D};
  VILA_RETURN_IF_ERROR(rope_forward(view(s.q, qs), rope_));
  VILA_RETURN_IF_ERROR(rope_forward(view(s.k, ks), rope_));
  // a = causal attention within segments  (T, H*D)
  VILA_RETURN_IF_ERROR(attention_forward(buffer(s.a, qs), view(s.q, qs), view(s.k, ks),
                                         view(s.v, ks), segments_, AttentionMask::kCausal,
                                         1.0f / std::sqrt(static_cast<float>(D)), &s.att));
  // x2 = x + o_proj(a)
  VILA_RETURN_IF_ERROR(linear_forward(buffer(tmp_, {T, C}), view(s.a, {T, qd}), lp.o.params(), fw));
  VILA_RETURN_IF_ERROR(add_forward(buffer(s.x2, {T, C}), x, view(tmp_, {T, C})));
  // x_out = x2 + down(silu(gate(h2)) ⊙ up(h2)),  h2 = rms(x2)
  VILA_RETURN_IF_ERROR(
      rms_norm_forward(buffer(s.h2, {T, C}), view(s.x2, {T, C}), lp.ln2->view(), eps, &s.n2));
  const TensorView h2 = view(s.h2, {T, C});
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.g, {T, F}), h2, lp.gate.params(), fw));
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.u, {T, F}), h2, lp.up.params(), fw));
  VILA_RETURN_IF_ERROR(
      silu_gate_forward(buffer(s.m, {T, F}), view(s.g, {T, F}), view(s.u, {T, F})));
  VILA_RETURN_IF_ERROR(linear_forward(view(tmp_, {T, C}), view(s.m, {T, F}), lp.down.params(), fw));
  return add_forward(buffer(x_out, {T, C}), view(s.x2, {T, C}), view(tmp_, {T, C}));
}

Status LlmModel::backward(const float* dlogits, float* dfeats, const LinearPrecision& precision) {
  if (t_ == 0) return invalid_argument("llm backward: no forward ran");
  const int64_t T = t_, C = config_.hidden, V = config_.vocab;
  // logits = lm_head(xn), xn = rms(xf)
  const LinearRef head = lm_head();
  VILA_RETURN_IF_ERROR(linear_backward(buffer(dh_, {T, C}), head.grads(),
                                       f32_view(const_cast<float*>(dlogits), {T, V}),
                                       view(xn_, {T, C}), head.params(), precision));
  VILA_RETURN_IF_ERROR(rms_norm_backward(buffer(dx_, {T, C}), {norm_->grad_view(), {}},
                                         view(dh_, {T, C}), view(xf_, {T, C}), norm_->view(), nf_));
  for (size_t l = saved_.size(); l-- > 0;) VILA_RETURN_IF_ERROR(layer_backward(l, precision));
  // x0 = embed(ids) with media rows replaced: gather their gradient, zero it, scatter the rest.
  const TensorView dx = view(dx_, {T, C});
  if (n_rows_ > 0) {
    if (dfeats != nullptr) {
      VILA_RETURN_IF_ERROR(
          media_splice_backward(f32_view(dfeats, {n_rows_, C}), dx, rows_, n_rows_));
    } else {
      for (int64_t i = 0; i < n_rows_; ++i) {
        std::fill_n(dx_.data() + rows_[i] * C, C, 0.0f);
      }
    }
  }
  if (embed_->trainable) {
    VILA_RETURN_IF_ERROR(embedding_backward(embed_->grad_view(), dx, lookup_ids_.data(), T));
  }
  return ok_status();
}

Status LlmModel::layer_backward(size_t l, const LinearPrecision& precision) {
  const LayerParams& lp = layers_[l];
  LayerSaved& s = saved_[l];
  const int64_t T = t_, C = config_.hidden, F = config_.intermediate;
  const int64_t H = config_.heads, Hkv = config_.kv_heads, D = config_.head_dim();
  const int64_t qd = H * D, kvd = Hkv * D;
  const TensorView dx = view(dx_, {T, C});  // d(layer output) on entry, d(layer input) on exit
  const TensorView dh = buffer(dh_, {T, C}), tmp = buffer(tmp_, {T, C});
  const TensorView dm = buffer(dm_, {T, F}), dg = buffer(dg_, {T, F}), du = buffer(du_, {T, F});
  // MLP branch
  VILA_RETURN_IF_ERROR(
      linear_backward(dm, lp.down.grads(), dx, view(s.m, {T, F}), lp.down.params(), precision));
  VILA_RETURN_IF_ERROR(silu_gate_backward(dg, du, dm, view(s.g, {T, F}), view(s.u, {T, F})));
  const TensorView h2 = view(s.h2, {T, C});
  VILA_RETURN_IF_ERROR(linear_backward(dh, lp.gate.grads(), dg, h2, lp.gate.params(), precision));
  VILA_RETURN_IF_ERROR(linear_backward(tmp, lp.up.grads(), du, h2, lp.up.params(), precision));
  VILA_RETURN_IF_ERROR(accumulate_grad(dh, tmp));
  VILA_RETURN_IF_ERROR(rms_norm_backward(tmp, {lp.ln2->grad_view(), {}}, dh, view(s.x2, {T, C}),
                                         lp.ln2->view(), s.n2));
  VILA_RETURN_IF_ERROR(accumulate_grad(dx, tmp));  // dx = d x2
  // Attention branch
  const Shape qs{T, H, D}, ks{T, Hkv, D};
  VILA_RETURN_IF_ERROR(linear_backward(buffer(da_, {T, qd}), lp.o.grads(), dx, view(s.a, {T, qd}),
                                       lp.o.params(), precision));
  VILA_RETURN_IF_ERROR(attention_backward(buffer(dq_, qs), buffer(dk_, ks), buffer(dv_, ks),
                                          view(da_, qs), view(s.q, qs), view(s.k, ks),
                                          view(s.v, ks), s.att));
  VILA_RETURN_IF_ERROR(rope_backward(view(dq_, qs), rope_));
  VILA_RETURN_IF_ERROR(rope_backward(view(dk_, ks), rope_));
  const TensorView h1 = view(s.h1, {T, C});
  VILA_RETURN_IF_ERROR(
      linear_backward(dh, lp.q.grads(), view(dq_, {T, qd}), h1, lp.q.params(), precision));
  VILA_RETURN_IF_ERROR(
      linear_backward(tmp, lp.k.grads(), view(dk_, {T, kvd}), h1, lp.k.params(), precision));
  VILA_RETURN_IF_ERROR(accumulate_grad(dh, tmp));
  VILA_RETURN_IF_ERROR(
      linear_backward(tmp, lp.v.grads(), view(dv_, {T, kvd}), h1, lp.v.params(), precision));
  VILA_RETURN_IF_ERROR(accumulate_grad(dh, tmp));
  VILA_RETURN_IF_ERROR(rms_norm_backward(tmp, {lp.ln1->grad_view(), {}}, dh, view(s.x, {T, C}),
                                         lp.ln1->view(), s.n1));
  return accumulate_grad(dx, tmp);  // dx = d x
}

}  // namespace vila::train
