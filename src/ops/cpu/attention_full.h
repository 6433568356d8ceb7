// Non-causal (bidirectional) multi-head attention, fp32: the SigLIP / ViT encoder attention.
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// q    (T, H, D)  queries
// k, v (S, H, D)  keys / values (same head count as q; no GQA in vision encoders)
// out  (T, H, D)
// For every head h and query t: out[t, h] = softmax(q[t, h] · k[:, h]ᵀ * scale) · v[:, h],
// fp32 with max subtraction (softmax_row), no mask. Per (head, block of 64 queries): two
// single-threaded cblas_sgemm calls on the strided head slices around the row softmax; the items
// run in parallel on the global thread pool. out must not alias q, k or v.
Status attention_full(const TensorView& out, const TensorView& q, const TensorView& k,
                      const TensorView& v, float scale);

}  // namespace vila::cpu
