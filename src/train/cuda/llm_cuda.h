// CudaLlm: the Qwen2 decoder of a VLM on the GPU for training, the CUDA twin of
// train/model/vlm_llm.h's LlmModel (same math, bf16 GEMM operands, fp32 residual stream, norms,
// softmax and gradients).
//
// Dimensions: R rows (a packed token row, or batch rows back to back), C hidden, H / Hkv heads,
// D head dim, F intermediate, V vocab, n media rows. Spans (span_attention.h) are the independent
// sequences of the R rows; row r of a span starting at s sits at position r - s.
//   x = embed(ids);  x[media_rows[i]] = feats[i]                                  (R, C) f32
//   per layer:  h1 = rms(x) bf16;  qkv = h1 Wqkvᵀ (+ b) f32;  q, k, v = split + RoPE  bf16
//               x2 = x + attn_spans(q, k, v) Woᵀ
//               x  = x2 + (silu(g) ⊙ u) Wdownᵀ,  [g | u] = rms(x2) Wguᵀ  (R, 2F) bf16
//   logits = rms(x) Wheadᵀ                                    (R, V) bf16 (as autocast's lm_head)
// backward(dlogits (R, V) bf16) runs it transposed; frozen parameters get no gradient, and
// dfeats (n, C) f32 is the gradient of the spliced features (the projector's output).
// recompute: only each layer's input x is kept; the layer's forward reruns in its backward.
// Activations live in the context's scratch under "llm.*".
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "train/cuda/span_attention.h"
#include "train/cuda/train_context.h"
#include "train/model/vlm_config.h"

namespace vila::train {

class CudaLlm {
 public:
  // Binds the llm/ parameters of ctx.params (the fused q/k/v and gate/up groups must be
  // contiguous, as DeviceParams lays them out).
  Status bind(const LanguageConfig& config, TrainContext& ctx, bool recompute);

  // ids (R) host; spans cover the R rows; feats (n, C) device f32 spliced at media_rows (n) host
  // (n may be 0). Output: logits() (R, V) bf16 on the device (the cross entropy may overwrite
  // them in place with dlogits for backward()).
  Status forward(const int32_t* ids, int64_t rows, const std::vector<Span>& spans,
                 const float* feats, const int64_t* media_rows, int64_t n_media);
  void* logits() const { return logits_; }

  // dlogits (R, V) bf16 of the last forward -> parameter gradients; dfeats (n, C) f32 written
  // when non-null.
  Status backward(const void* dlogits, float* dfeats);

 private:
  struct LayerOffsets {
    int64_t ln1, ln2, wqkv, bqkv, wo, wgu, wdown;
  };
  struct Saved {
    float *rstd1, *rstd2, *x2, *lse;             // lse (R, H): the attention's log-sum-exp
    uint16_t *h1, *q, *k, *v, *a, *h2, *gu, *m;  // m = silu(g) u (R, F)
  };
  StatusOr<Saved> saved(size_t layer);
  Status layer_forward(size_t l, bool recomputing);
  Status layer_backward(size_t l);
  Status upload_rows(const int32_t* ids, const std::vector<Span>& spans, const int64_t* media_rows,
                     int64_t n_media);

  LanguageConfig cfg_;
  TrainContext* ctx_ = nullptr;
  bool recompute_ = false;
  std::vector<LayerOffsets> layers_;
  int64_t embed_ = 0, norm_ = 0, head_ = 0;
  int64_t C_ = 0, F_ = 0, V_ = 0, D_ = 0, qd_ = 0, kvd_ = 0, nqkv_ = 0;
  AttnDims dims_;

  // The last forward.
  int64_t R_ = 0, n_media_ = 0;
  std::vector<Span> spans_;
  std::vector<int32_t> lookup_;  // (R) ids, media rows 0
  int32_t *ids_dev_ = nullptr, *media_dev_ = nullptr;
  // The embedding backward's row groups (cuda::EmbeddingGroups on the device).
  int32_t *emb_order_ = nullptr, *emb_start_ = nullptr, *emb_id_ = nullptr;
  int64_t emb_segments_ = 0;
  float *cos_ = nullptr, *sin_ = nullptr;  // (R, D/2) per-row RoPE tables
  std::vector<float*> xs_;                 // (L + 1) x (R, C) f32 layer inputs, final output
  float* rstd_f_ = nullptr;
  uint16_t* xn_ = nullptr;      // (R, C) bf16 final norm output
  uint16_t* logits_ = nullptr;  // (R, V) bf16
};

}  // namespace vila::train
