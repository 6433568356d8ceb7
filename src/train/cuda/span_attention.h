// Attention of the CUDA training parts over spans: each span is an independent sequence of rows
// (a packed sample of the LLM row, an image of the vision tower, a batch row of the benchmark),
// with a causal (LLM) or full (SigLIP) mask, GQA, on q / k / v already projected (and rotated).
//
// Shapes: R rows; q (R, H·D), k, v (R, Hkv·D) bf16, row strides H·D and Hkv·D, or q_stride and
// kv_stride (e.g. the column blocks of one (R, (H + 2 Hkv)·D) q/k/v GEMM output, without a split);
// query head h reads KV head h / (H / Hkv). Per span of L rows and head h:
//   S = scale q kᵀ (L, L),  P = softmax(S) (causal: keys <= query),  out = P v
// Forward: flash_attention_dense (no L² buffer) when it supports D, else the materialised form
// below. Backward: FlashAttention-2 (flash_attention_backward.h, from the forward's log-sum-exp)
// when it supports D (64, 72, 80, 128) and ctx.deterministic is off (its dq / dk / dv are fp32
// atomics), else materialised (no atomics: reproducible), per span, batched over heads with
// strided cuBLASLt GEMMs (K and V expanded to H heads under GQA):
//   S, P recomputed;  dV = Pᵀ dA;  dP = dA Vᵀ;  dS = P ⊙ (dP - Σ_j P dP);
//   dQ = scale dS K;  dK = scale dSᵀ Q   (fp32, per query head)
// then train_qkv_grad_merge writes dqkv (R, (H + 2 Hkv) D) bf16: the query heads of each KV head
// summed, RoPE undone through the per-row tables cos, sin (R, D/2) (null: no RoPE). Without RoPE
// and GQA the flash backward writes dq, dk, dv straight into the column blocks of one fp32
// (R, 3 H·D) buffer and a conversion replaces the merge.
// Scratch: (H, L, L) fp32 + bf16 for the longest span, plus (L, H·D) per operand.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "train/cuda/train_context.h"

namespace vila::train {

struct Span {
  int64_t start = 0;  // first row
  int64_t len = 0;    // rows
};

struct AttnDims {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  bool causal = true;
  int64_t q_stride = 0, kv_stride = 0;  // row strides (elements) of q and of k, v; 0: compact
  int64_t qs() const { return q_stride > 0 ? q_stride : heads * head_dim; }
  int64_t kvs() const { return kv_stride > 0 ? kv_stride : kv_heads * head_dim; }
};

// Spans of a packed row from its segment ids (T) (null: one span of T rows).
std::vector<Span> spans_from_segments(const int32_t* segments, int64_t t);
// `count` spans of `len` rows each, back to back.
std::vector<Span> uniform_spans(int64_t count, int64_t len);

// out (R, H·D) bf16 <- attention of every span; lse (R, H) f32 written when the backward will
// use it (flash path), so callers keep a buffer of that size with the layer's activations.
Status span_attention_forward(TrainContext& ctx, void* out, float* lse, const void* q,
                              const void* k, const void* v, const std::vector<Span>& spans,
                              const AttnDims& d);

// dqkv (R, (H + 2 Hkv)·D) bf16 <- da (R, H·D) bf16 and the forward's q, k, v, out, lse.
struct AttnSaved {
  const void *q, *k, *v, *out;
  const float* lse;
};
Status span_attention_backward(TrainContext& ctx, void* dqkv, const void* da, const AttnSaved& s,
                               const float* cos, const float* sin, const std::vector<Span>& spans,
                               const AttnDims& d);

}  // namespace vila::train
