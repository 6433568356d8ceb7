// Causal grouped-query attention of T new queries against a KV cache, fp32.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// q    (T, H, D)    queries of positions p0 .. p0+T-1 (RoPE already applied)
// k, v (S, Hkv, D)  cache of one layer; rows [0, p0+T) are valid (this chunk's K/V included)
// out  (T, H, D)
// Query t of head h attends keys j in [0, p0 + t] of kv head h / (H / Hkv):
//   out = softmax(q · kᵀ * scale) · v, fp32 softmax with max subtraction.
// H % Hkv == 0. Parallel over (head, query) on the global thread pool. out must not alias q.
Status attention_causal(const TensorView& out, const TensorView& q, const TensorView& k,
                        const TensorView& v, int64_t p0, float scale);

}  // namespace vila::cpu
