// Causal grouped-query attention of T new queries against a contiguous KV cache, fp32, on the GPU.
// Same contract as cpu::attention_causal (ops/cpu/attention.h), which is the oracle:
//   q, out (T, H, D)   queries of positions p0 .. p0+T-1 (RoPE applied)
//   k, v   (S, Hkv, D) one layer's cache; rows [0, p0+T) valid (this chunk's K/V included)
//   query t of head h attends keys [0, p0 + t] of kv head h / (H / Hkv):
//   out = softmax(q · kᵀ * scale) · v
// First version, straightforward rather than fast: one block per (head, query), its warps split
// the keys and keep an online softmax (running max, sum, fp32 accumulator) each, merged at the
// end. Serves prefill (T queries) and decode (T = 1) alike. D <= 256; T <= 65535.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

constexpr int64_t kAttentionMaxHeadDim = 256;

// Device pointers; stream: cudaStream_t or nullptr. out must not alias q.
Status attention_causal_f32(float* out, const float* q, const float* k, const float* v, int64_t p0,
                            int64_t t_count, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                            int64_t cache_len, float scale, void* stream);

}  // namespace vila::cuda
