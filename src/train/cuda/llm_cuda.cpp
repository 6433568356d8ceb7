// CudaLlm (llm_cuda.h): the Qwen2 decoder's training forward and backward on the GPU.
#include "train/cuda/llm_cuda.h"

#include <string>

#include "backend/cuda/memory.h"
#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_vlm_ops.h"
#include "train/rope.h"

namespace vila::train {

namespace {

constexpr const char* kLlm = "llm/";

std::string layer_name(size_t l, const std::string& tail) {
  return std::string(kLlm) + "model.layers." + std::to_string(l) + "." + tail;
}

}  // namespace

Status CudaLlm::bind(const LanguageConfig& config, TrainContext& ctx, bool recompute) {
  cfg_ = config;
  ctx_ = &ctx;
  recompute_ = recompute;
  C_ = config.hidden;
  F_ = config.intermediate;
  V_ = config.vocab;
  D_ = config.head_dim();
  qd_ = config.heads * D_;
  kvd_ = config.kv_heads * D_;
  nqkv_ = qd_ + 2 * kvd_;
  dims_ = {config.heads, config.kv_heads, D_, /*causal=*/true};
  const DeviceParams& P = *ctx.params;
  auto off = [&](const std::string& name) { return P.offset(name); };
  // A fused group: each member right after the previous one.
  auto group =
      [&](const std::vector<std::pair<std::string, int64_t>>& members) -> StatusOr<int64_t> {
    VILA_ASSIGN_OR_RETURN(const int64_t first, off(members[0].first));
    int64_t expect = first;
    for (const auto& [name, numel] : members) {
      VILA_ASSIGN_OR_RETURN(const int64_t o, off(name));
      if (o != expect) {
        return internal_error("CudaLlm: " + name + " is not next to its fused group");
      }
      expect += numel;
    }
    return first;
  };
  layers_.assign(static_cast<size_t>(config.layers), {});
  for (size_t l = 0; l < layers_.size(); ++l) {
    LayerOffsets& lo = layers_[l];
    VILA_ASSIGN_OR_RETURN(lo.ln1, off(layer_name(l, "input_layernorm.weight")));
    VILA_ASSIGN_OR_RETURN(lo.ln2, off(layer_name(l, "post_attention_layernorm.weight")));
    VILA_ASSIGN_OR_RETURN(lo.wqkv, group({{layer_name(l, "self_attn.q_proj.weight"), qd_ * C_},
                                          {layer_name(l, "self_attn.k_proj.weight"), kvd_ * C_},
                                          {layer_name(l, "self_attn.v_proj.weight"), kvd_ * C_}}));
    lo.bqkv = -1;
    if (config.qkv_bias) {
      VILA_ASSIGN_OR_RETURN(lo.bqkv, group({{layer_name(l, "self_attn.q_proj.bias"), qd_},
                                            {layer_name(l, "self_attn.k_proj.bias"), kvd_},
                                            {layer_name(l, "self_attn.v_proj.bias"), kvd_}}));
    }
    VILA_ASSIGN_OR_RETURN(lo.wo, off(layer_name(l, "self_attn.o_proj.weight")));
    VILA_ASSIGN_OR_RETURN(lo.wgu, group({{layer_name(l, "mlp.gate_proj.weight"), F_ * C_},
                                         {layer_name(l, "mlp.up_proj.weight"), F_ * C_}}));
    VILA_ASSIGN_OR_RETURN(lo.wdown, off(layer_name(l, "mlp.down_proj.weight")));
  }
  VILA_ASSIGN_OR_RETURN(embed_, off(std::string(kLlm) + "model.embed_tokens.weight"));
  VILA_ASSIGN_OR_RETURN(norm_, off(std::string(kLlm) + "model.norm.weight"));
  head_ = embed_;
  if (!config.tie_word_embeddings) {
    VILA_ASSIGN_OR_RETURN(head_, off(std::string(kLlm) + "lm_head.weight"));
  }
  return ok_status();
}

StatusOr<CudaLlm::Saved> CudaLlm::saved(size_t layer) {
  const std::string p = "llm." + std::to_string(recompute_ ? 0 : layer) + ".";
  Scratch& s = ctx_->scratch;
  const int64_t R = R_;
  Saved v{};
  VILA_ASSIGN_OR_RETURN(v.rstd1, s.get<float>(p + "rstd1", R));
  VILA_ASSIGN_OR_RETURN(v.rstd2, s.get<float>(p + "rstd2", R));
  VILA_ASSIGN_OR_RETURN(v.lse, s.get<float>(p + "lse", R * cfg_.heads));
  VILA_ASSIGN_OR_RETURN(v.x2, s.get<float>(p + "x2", R * C_));
  VILA_ASSIGN_OR_RETURN(v.h1, s.get<uint16_t>(p + "h1", R * C_));
  VILA_ASSIGN_OR_RETURN(v.q, s.get<uint16_t>(p + "q", R * qd_));
  VILA_ASSIGN_OR_RETURN(v.k, s.get<uint16_t>(p + "k", R * kvd_));
  VILA_ASSIGN_OR_RETURN(v.v, s.get<uint16_t>(p + "v", R * kvd_));
  VILA_ASSIGN_OR_RETURN(v.a, s.get<uint16_t>(p + "a", R * qd_));
  VILA_ASSIGN_OR_RETURN(v.h2, s.get<uint16_t>(p + "h2", R * C_));
  VILA_ASSIGN_OR_RETURN(v.gu, s.get<uint16_t>(p + "gu", R * 2 * F_));
  VILA_ASSIGN_OR_RETURN(v.m, s.get<uint16_t>(p + "m", R * F_));
  return v;
}

// Token ids (media rows looked up as 0: overwritten by the splice), media rows and the per-row
// RoPE tables of the spans, uploaded.
Status CudaLlm::upload_rows(const int32_t* ids, const std::vector<Span>& spans,
                            const int64_t* media_rows, int64_t n_media) {
  const int64_t R = R_;
  lookup_.assign(ids, ids + R);
  std::vector<int32_t> media(static_cast<size_t>(n_media));
  for (int64_t i = 0; i < n_media; ++i) {
    if (media_rows[i] < 0 || media_rows[i] >= R) {
      return invalid_argument("CudaLlm: media row " + std::to_string(media_rows[i]) +
                              " outside the " + std::to_string(R) + " rows");
    }
    lookup_[static_cast<size_t>(media_rows[i])] = 0;
    media[static_cast<size_t>(i)] = static_cast<int32_t>(media_rows[i]);
  }
  for (int64_t i = 0; i < R; ++i) {
    if (lookup_[static_cast<size_t>(i)] < 0 || lookup_[static_cast<size_t>(i)] >= V_) {
      return invalid_argument(
          "CudaLlm: token id " + std::to_string(lookup_[static_cast<size_t>(i)]) + " at row " +
          std::to_string(i) + " outside the vocabulary of " + std::to_string(V_));
    }
  }
  std::vector<int64_t> positions(static_cast<size_t>(R), -1);
  for (const Span& sp : spans) {
    for (int64_t j = 0; j < sp.len; ++j) positions[static_cast<size_t>(sp.start + j)] = j;
  }
  for (int64_t i = 0; i < R; ++i) {
    if (positions[static_cast<size_t>(i)] < 0) {
      return invalid_argument("CudaLlm: row " + std::to_string(i) + " is in no span");
    }
  }
  RopeTables rope;
  VILA_RETURN_IF_ERROR(rope_tables(&rope, positions.data(), R, D_, cfg_.rope_theta));
  Scratch& s = ctx_->scratch;
  VILA_ASSIGN_OR_RETURN(ids_dev_, s.get<int32_t>("llm.ids", R));
  VILA_ASSIGN_OR_RETURN(media_dev_, s.get<int32_t>("llm.media", std::max<int64_t>(n_media, 1)));
  VILA_ASSIGN_OR_RETURN(cos_, s.get<float>("llm.cos", R * D_ / 2));
  VILA_ASSIGN_OR_RETURN(sin_, s.get<float>("llm.sin", R * D_ / 2));
  void* st = ctx_->st();
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(ids_dev_, lookup_.data(), lookup_.size() * sizeof(int32_t), st));
  // The rows grouped by id for the embedding backward: order | seg_start | seg_id, one buffer.
  cuda::EmbeddingGroups groups;
  cuda::embedding_groups(lookup_.data(), R, &groups);
  emb_segments_ = static_cast<int64_t>(groups.seg_id.size());
  VILA_ASSIGN_OR_RETURN(emb_order_, s.get<int32_t>("llm.emb_groups", 3 * R + 1));
  emb_start_ = emb_order_ + R;
  emb_id_ = emb_start_ + emb_segments_ + 1;
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(emb_order_, groups.order.data(),
                                            groups.order.size() * sizeof(int32_t), st));
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(emb_start_, groups.seg_start.data(),
                                            groups.seg_start.size() * sizeof(int32_t), st));
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(emb_id_, groups.seg_id.data(),
                                            groups.seg_id.size() * sizeof(int32_t), st));
  if (n_media > 0) {
    VILA_RETURN_IF_ERROR(
        cuda::copy_to_device(media_dev_, media.data(), media.size() * sizeof(int32_t), st));
  }
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(cos_, rope.cos.data(), rope.cos.size() * sizeof(float), st));
  return cuda::copy_to_device(sin_, rope.sin.data(), rope.sin.size() * sizeof(float), st);
}

Status CudaLlm::forward(const int32_t* ids, int64_t rows, const std::vector<Span>& spans,
                        const float* feats, const int64_t* media_rows, int64_t n_media) {
  if (ids == nullptr || rows <= 0) return invalid_argument("CudaLlm: no tokens");
  if (rows > cfg_.max_position) {
    for (const Span& sp : spans) {
      if (sp.len > cfg_.max_position) {
        return invalid_argument("CudaLlm: a sequence of " + std::to_string(sp.len) +
                                " tokens exceeds max_position " +
                                std::to_string(cfg_.max_position));
      }
    }
  }
  if (n_media > 0 && feats == nullptr) {
    return invalid_argument("CudaLlm: media rows without features");
  }
  R_ = rows;
  n_media_ = n_media;
  spans_ = spans;
  VILA_RETURN_IF_ERROR(upload_rows(ids, spans, media_rows, n_media));
  Scratch& s = ctx_->scratch;
  xs_.resize(layers_.size() + 1);
  for (size_t l = 0; l < xs_.size(); ++l) {
    VILA_ASSIGN_OR_RETURN(xs_[l], s.get<float>("llm.x" + std::to_string(l), R_ * C_));
  }
  VILA_ASSIGN_OR_RETURN(rstd_f_, s.get<float>("llm.rstd_f", R_));
  VILA_ASSIGN_OR_RETURN(xn_, s.get<uint16_t>("llm.xn", R_ * C_));
  VILA_ASSIGN_OR_RETURN(logits_, s.get<uint16_t>("llm.logits", R_ * V_));
  void* st = ctx_->st();
  const DeviceParams& P = *ctx_->params;
  VILA_RETURN_IF_ERROR(
      cuda::train_embedding_forward(xs_[0], P.value(embed_), ids_dev_, R_, C_, st));
  if (n_media > 0) {
    VILA_RETURN_IF_ERROR(cuda::train_splice_rows(xs_[0], feats, media_dev_, n_media, C_, st));
  }
  for (size_t l = 0; l < layers_.size(); ++l) VILA_RETURN_IF_ERROR(layer_forward(l, false));
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_forward(xn_, rstd_f_, xs_.back(), P.value(norm_), R_,
                                                    C_, static_cast<float>(cfg_.rms_eps), st));
  return ctx_->linear_forward(logits_, DType::kBF16, xn_, R_, head_, V_, C_, -1, false);
}

Status CudaLlm::layer_forward(size_t l, bool recomputing) {
  const LayerOffsets& lo = layers_[l];
  VILA_ASSIGN_OR_RETURN(Saved s, saved(l));
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  const DeviceParams& P = *ctx_->params;
  const int64_t R = R_;
  const float* x = xs_[l];
  const auto eps = static_cast<float>(cfg_.rms_eps);
  VILA_RETURN_IF_ERROR(
      cuda::train_rms_norm_forward(s.h1, s.rstd1, x, P.value(lo.ln1), R, C_, eps, st));
  // qkv (R, nqkv) f32 = h1 Wqkvᵀ + b; split + RoPE -> q, k, v bf16
  VILA_ASSIGN_OR_RETURN(float* qkv, sc.get<float>("llm.qkv", R * nqkv_));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_forward(qkv, DType::kF32, s.h1, R, lo.wqkv, nqkv_, C_, lo.bqkv, false));
  const cuda::QkvShape qs{R, R, static_cast<int>(cfg_.heads), static_cast<int>(cfg_.kv_heads),
                          static_cast<int>(D_)};
  VILA_RETURN_IF_ERROR(cuda::train_qkv_rope_split(s.q, s.k, s.v, qkv, cos_, sin_, qs, st));
  VILA_RETURN_IF_ERROR(span_attention_forward(*ctx_, s.a, s.lse, s.q, s.k, s.v, spans_, dims_));
  // x2 = x + a Woᵀ
  VILA_RETURN_IF_ERROR(
      ctx_->linear_forward(s.x2, DType::kF32, s.a, R, lo.wo, C_, qd_, -1, false, nullptr, x));
  // h2 = rms(x2); gu = h2 Wguᵀ (R, 2F) bf16
  VILA_RETURN_IF_ERROR(
      cuda::train_rms_norm_forward(s.h2, s.rstd2, s.x2, P.value(lo.ln2), R, C_, eps, st));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_forward(s.gu, DType::kBF16, s.h2, R, lo.wgu, 2 * F_, C_, -1, false));
  if (recomputing) return ok_status();  // the layer output is already saved (m: by the backward)
  // x_out = x2 + (silu(g) u) Wdownᵀ
  VILA_RETURN_IF_ERROR(cuda::train_silu_mul(s.m, s.gu, R, F_, st));
  return ctx_->linear_forward(xs_[l + 1], DType::kF32, s.m, R, lo.wdown, C_, F_, -1, false, nullptr,
                              s.x2);
}

// dx (R, C) f32: d(layer output) on entry, d(layer input) on return.
Status CudaLlm::layer_backward(size_t l) {
  const LayerOffsets& lo = layers_[l];
  if (recompute_) VILA_RETURN_IF_ERROR(layer_forward(l, true));
  VILA_ASSIGN_OR_RETURN(Saved s, saved(l));
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  DeviceParams& P = *ctx_->params;
  const int64_t R = R_;
  VILA_ASSIGN_OR_RETURN(float* dx, sc.get<float>("llm.dx", R * C_));
  VILA_ASSIGN_OR_RETURN(float* dh, sc.get<float>("llm.dh", R * C_));
  VILA_ASSIGN_OR_RETURN(uint16_t * dxb, sc.get<uint16_t>("llm.dxb", R * C_));
  VILA_ASSIGN_OR_RETURN(uint16_t * dgu, sc.get<uint16_t>("llm.dgu", R * 2 * F_));
  VILA_ASSIGN_OR_RETURN(uint16_t * da, sc.get<uint16_t>("llm.da", R * qd_));
  VILA_ASSIGN_OR_RETURN(uint16_t * dqkv, sc.get<uint16_t>("llm.dqkv", R * nqkv_));
  // MLP: dW_down += dxᵀ m; dm = dx W_down (into m: stream order makes dW read m first). m was
  // saved by the forward, or (recompute) is made here.
  uint16_t* m = s.m;  // dxb = bf16(dx) on entry (the norm backward above wrote both)
  if (recompute_) VILA_RETURN_IF_ERROR(cuda::train_silu_mul(m, s.gu, R, F_, st));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(m, DType::kBF16, 0.0f, dxb, m, R, lo.wdown, C_, F_, -1));
  VILA_RETURN_IF_ERROR(cuda::train_silu_mul_backward(dgu, m, s.gu, R, F_, st));
  // dW_gu += dguᵀ h2; dh2 = dgu W_gu; dx += rms_backward(dh2)
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(dh, DType::kF32, 0.0f, dgu, s.h2, R, lo.wgu, 2 * F_, C_, -1));
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(lo.ln2, C_));  // dw += (norm weights: lazy zeroing)
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_backward(dx, P.grad(lo.ln2), dh, s.x2, P.value(lo.ln2),
                                                     s.rstd2, R, C_, true, st, dxb));
  // Attention: dW_o += dxᵀ a; da = dx W_o; dqkv through the spans
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(da, DType::kBF16, 0.0f, dxb, s.a, R, lo.wo, C_, qd_, -1));
  VILA_RETURN_IF_ERROR(span_attention_backward(*ctx_, dqkv, da, {s.q, s.k, s.v, s.a, s.lse}, cos_,
                                               sin_, spans_, dims_));
  // dW_qkv += dqkvᵀ h1; db += Σ dqkv; dh1 = dqkv W_qkv; dx += rms_backward(dh1)
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(dh, DType::kF32, 0.0f, dqkv, s.h1, R, lo.wqkv, nqkv_, C_, lo.bqkv));
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(lo.ln1, C_));
  return cuda::train_rms_norm_backward(dx, P.grad(lo.ln1), dh, xs_[l], P.value(lo.ln1), s.rstd1, R,
                                       C_, true, st, dxb);
}

Status CudaLlm::backward(const void* dlogits, float* dfeats) {
  if (R_ == 0) return invalid_argument("CudaLlm: backward before forward");
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  DeviceParams& P = *ctx_->params;
  VILA_ASSIGN_OR_RETURN(float* dx, sc.get<float>("llm.dx", R_ * C_));
  VILA_ASSIGN_OR_RETURN(float* dh, sc.get<float>("llm.dh", R_ * C_));
  VILA_ASSIGN_OR_RETURN(uint16_t * dxb, sc.get<uint16_t>("llm.dxb", R_ * C_));
  // logits = xn Wheadᵀ, xn = rms(xf)
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(dh, DType::kF32, 0.0f, dlogits, xn_, R_, head_, V_, C_, -1));
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(norm_, C_));
  VILA_RETURN_IF_ERROR(cuda::train_rms_norm_backward(
      dx, P.grad(norm_), dh, xs_.back(), P.value(norm_), rstd_f_, R_, C_, false, st, dxb));
  // Each layer's backward reads dxb = bf16(dx) and leaves it so (its norm backwards write both).
  for (size_t l = layers_.size(); l-- > 0;) VILA_RETURN_IF_ERROR(layer_backward(l));
  // The media rows' gradient goes to the features (and not to the token table).
  if (n_media_ > 0) {
    float* sink = dfeats;
    if (sink == nullptr) {
      VILA_ASSIGN_OR_RETURN(sink, sc.get<float>("llm.dfeats_sink", n_media_ * C_));
    }
    VILA_RETURN_IF_ERROR(cuda::train_splice_rows_backward(sink, dx, media_dev_, n_media_, C_, st));
  }
  if (float* ge = P.grad(embed_); ge != nullptr) {
    // tied: the head's dW GEMM above wrote it already (no memset); else zeroed here
    VILA_RETURN_IF_ERROR(P.prepare_grad_add(embed_, V_ * C_));
    VILA_RETURN_IF_ERROR(cuda::train_embedding_backward(ge, dx, emb_order_, emb_start_, emb_id_,
                                                        emb_segments_, C_, st));
  }
  return ok_status();
}

}  // namespace vila::train
