// The Qwen2 decoder for training: token embedding, media splice, L decoder blocks over packed
// segments, final RMSNorm, lm_head (tied or not); forward with every activation that backward
// needs saved, and the hand-written backward.
//
// Dimensions: T tokens, C hidden, H heads, Hkv kv heads, D head dim, F intermediate, V vocab,
// n media rows.
//   x = embed(ids);  x[rows[i]] = feats[i]                           (T, C)
//   per layer:  h1 = rms(x);  q, k, v = Linear(h1) (+bias);  rope(q, k) at per-segment positions
//               x2 = x + o_proj(attn_causal_segments(q, k, v))
//               x  = x2 + down(silu(gate(h2)) ⊙ up(h2)),  h2 = rms(x2)
//   logits = lm_head(rms(x))                                          (T, V)
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "train/attention.h"
#include "train/model/model_common.h"
#include "train/model/vlm_config.h"
#include "train/precision.h"
#include "train/rope.h"

namespace vila::train {

class LlmModel {
 public:
  // Binds the registered llm/ parameters of `config`.
  Status bind(const LanguageConfig& config, ParamStore& store);

  // ids, segments (T); feats (n, C) spliced at rows (n) (n may be 0). The ids at media rows are
  // placeholders and are never looked up. Output: logits() (T, V).
  Status forward(const int32_t* ids, const int32_t* segments, int64_t t_count, const float* feats,
                 const int64_t* rows, int64_t n_rows, const LinearPrecision& precision);
  std::vector<float>& logits() { return logits_; }

  // dlogits (T, V) -> dfeats (n, C) written when non-null; accumulates parameter gradients.
  Status backward(const float* dlogits, float* dfeats, const LinearPrecision& precision);

 private:
  struct LayerParams {
    Param* ln1 = nullptr;
    Param* ln2 = nullptr;
    LinearRef q, k, v, o, gate, up, down;
  };
  struct LayerSaved {
    std::vector<float> x, h1, q, k, v, a, x2, h2, g, u, m;
    RmsNormSaved n1, n2;
    AttentionSaved att;
  };

  Status layer_forward(size_t l, const LinearPrecision& precision, std::vector<float>& x_out);
  Status layer_backward(size_t l, const LinearPrecision& precision);
  LinearRef lm_head() const;

  LanguageConfig config_;
  Param* embed_ = nullptr;    // (V, C)
  Param* norm_ = nullptr;     // (C)
  Param* lm_head_ = nullptr;  // (V, C), null when tied
  std::vector<LayerParams> layers_;

  int64_t t_ = 0;
  const int32_t* segments_ = nullptr;
  const int64_t* rows_ = nullptr;
  int64_t n_rows_ = 0;
  std::vector<int32_t> lookup_ids_;  // (T) ids with media rows set to 0
  std::vector<int64_t> positions_;   // (T)
  RopeTables rope_;
  std::vector<LayerSaved> saved_;
  std::vector<float> xf_, xn_;  // (T, C) final residual stream and its norm
  RmsNormSaved nf_;
  std::vector<float> logits_;                                            // (T, V)
  std::vector<float> dx_, dh_, tmp_, da_, dq_, dk_, dv_, dg_, du_, dm_;  // backward scratch
};

}  // namespace vila::train
