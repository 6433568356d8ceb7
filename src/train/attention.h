// Multi-head attention with grouped-query heads for training, written as a plain per-head loop
// that keeps the softmax (memory O(H T²), fine on the CPU).
//
// Shapes: q (T, H, D), k, v (T, Hkv, D), out (T, H, D); H % Hkv == 0, head h reads kv head
// g = h / (H / Hkv). Masks (segments: packing.h, a null pointer is one segment):
//   kCausal  query t sees keys j with  begin(t) <= j <= t          (LLM, packed samples)
//   kFull    query t sees keys j with  begin(t) <= j < end(t)      (vision tower, packed images)
// Forward, per head h and query t over its visible keys j:
//   S_j = scale · q[t,h] · k[j,g],   P = softmax(S) (max subtracted),   out[t,h] = sum_j P_j v[j,g]
// Backward (dq, dk, dv written):
//   dP_j = dout[t,h] · v[j,g],   dS_j = P_j (dP_j - sum_i P_i dP_i)
//   dq[t,h] = scale sum_j dS_j k[j,g],   dk[j,g] += scale dS_j q[t,h],   dv[j,g] += P_j dout[t,h]
// Saved: P of every (head, query) row and the visible key range of every query.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

enum class AttentionMask { kCausal, kFull };

struct AttentionSaved {
  int64_t tokens = 0;              // T
  int64_t heads = 0;               // H
  float scale = 0.0f;              // the scale of the forward
  std::vector<int64_t> key_begin;  // (T) first visible key of each query
  std::vector<int64_t> key_end;    // (T) one past the last visible key
  std::vector<float> probs;        // (H, T, T) softmax rows, 0 outside [key_begin, key_end)
};

// out must not alias q, k or v. segments (T) non-decreasing ids, or null.
Status attention_forward(const TensorView& out, const TensorView& q, const TensorView& k,
                         const TensorView& v, const int32_t* segments, AttentionMask mask,
                         float scale, AttentionSaved* saved);

// dq (T, H, D), dk, dv (T, Hkv, D) written; dout (T, H, D); q, k, v as in the forward.
Status attention_backward(const TensorView& dq, const TensorView& dk, const TensorView& dv,
                          const TensorView& dout, const TensorView& q, const TensorView& k,
                          const TensorView& v, const AttentionSaved& saved);

}  // namespace vila::train
