// Element-wise and row-wise CUDA kernels of the Qwen2 training step (CudaLlmTrainer): RMSNorm
// forward / backward, the q/k/v split with RoPE and its backward, the SwiGLU gate, the pieces of
// the materialised causal attention backward, embedding gather / scatter, conversions.
// Activations are bf16 (`bf16*` below: __nv_bfloat16), the residual stream and gradients fp32.
// Rows are tokens: R = batch · T. Every launcher checks its arguments and returns
// VILA_CUDA_CHECK(cudaGetLastError()); stream is a cudaStream_t or nullptr.
//
// Math (the CPU oracles: train/norm.h, train/rope.h, train/activation.h, train/attention.h):
//   rms:      r = 1 / sqrt(mean(x²) + eps),  y = x r w
//             dx (+)= r (dy w - x r² mean(dy w x)),  dw += Σ_rows dy x r
//   rope:     y1 = x1 c - x2 s, y2 = x2 c + x1 s;  dx1 = dy1 c + dy2 s, dx2 = dy2 c - dy1 s
//   swiglu:   m = silu(g) u;  dg = dm u σ(g)(1 + g(1 - σ(g))),  du = dm silu(g)
//   softmax:  P = softmax(S) per row (causal or full);  dS = P ⊙ (dP - Σ_j P dP)
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace vila::cuda {

// y (R, C) bf16, rstd (R) f32  <-  x (R, C) f32, w (C) f32.
Status train_rms_norm_forward(void* y, float* rstd, const float* x, const float* w, int64_t rows,
                              int64_t cols, float eps, void* stream);
// dx (R, C) f32 written (or added to when accumulate), dw (C) f32 added to (null: frozen);
// dy, x (R, C) f32. dx16 (R, C) bf16 when non-null: also the final dx rounded (the next GEMM's
// operand, saving a conversion pass).
Status train_rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                               const float* w, const float* rstd, int64_t rows, int64_t cols,
                               bool accumulate, void* stream, void* dx16 = nullptr);

// qkv (R, (H + 2 Hkv) D) f32 -> q (R, H, D), k (R, Hkv, D) rotated, v (R, Hkv, D), all bf16.
// Row r sits at position r % seq; cos, sin (seq, D/2) f32, or both null: no rotation (SigLIP).
struct QkvShape {
  int64_t rows = 0, seq = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
};
Status train_qkv_rope_split(void* q, void* k, void* v, const float* qkv, const float* cos,
                            const float* sin, const QkvShape& shape, void* stream);
// One sequence (rows = seq): dq (seq, H, D) and dk_exp, dv_exp (seq, H, D) f32 (gradients of the
// rotated q, of k and v expanded to every query head; with kv_summed (seq, Hkv, D), already summed
// per KV head) -> dqkv (seq, (H + 2 Hkv) D) bf16: rotation undone, the H / Hkv query heads of each
// KV head summed.
Status train_qkv_grad_merge(void* dqkv, const float* dq, const float* dk_exp, const float* dv_exp,
                            const float* cos, const float* sin, const QkvShape& shape, void* stream,
                            bool kv_summed = false);
// kv (seq, Hkv, D) bf16 -> out (seq, H, D) bf16: query head h reads KV head h / (H / Hkv).
Status train_expand_kv(void* out, const void* kv, const QkvShape& shape, void* stream);

// p (n, T, T) bf16 <- row softmax of s (n, T, T) f32 (already scaled); causal: p = 0 above the
// diagonal, else every column counts.
Status train_softmax(void* p, const float* s, int64_t n, int64_t t, bool causal, void* stream);
// In place: p (n, T, T) bf16 holds P on entry and dS on return; dp (n, T, T) f32.
Status train_softmax_backward(void* p, const float* dp, int64_t n, int64_t t, bool causal,
                              void* stream);

// gu (R, 2F) bf16 = [g | u] -> m (R, F) bf16.
Status train_silu_mul(void* m, const void* gu, int64_t rows, int64_t f, void* stream);
// dm (R, F) bf16, gu (R, 2F) bf16 -> dgu (R, 2F) bf16 = [dg | du].
Status train_silu_mul_backward(void* dgu, const void* dm, const void* gu, int64_t rows, int64_t f,
                               void* stream);

// out (n) bf16 <- in (n) f32, and back.
Status train_f32_to_bf16(void* out, const float* in, int64_t n, void* stream);
Status train_bf16_to_f32(float* out, const void* in, int64_t n, void* stream);
// (The bias gradients' column sums are in train_vlm_ops.h.)
// x (R, C) f32 <- table (V, C) f32 rows ids (R) int32 (checked on the host by the caller).
Status train_embedding_forward(float* x, const float* table, const int32_t* ids, int64_t rows,
                               int64_t cols, void* stream);
// The rows of a batch grouped by token id for the embedding backward: order (R) the row indices
// sorted by id (ascending rows within an id), seg_start (U + 1) offsets into order of the U
// groups, seg_id (U) their ids. Host code (built per batch from the host ids).
struct EmbeddingGroups {
  std::vector<int32_t> order, seg_start, seg_id;
};
void embedding_groups(const int32_t* ids, int64_t rows, EmbeddingGroups* groups);
// dtable (V, C) f32 += dx (R, C) f32 scattered to the rows' ids, reproducibly: one block per group
// (device copies of EmbeddingGroups; segments = U) sums its rows in order, then adds once.
Status train_embedding_backward(float* dtable, const float* dx, const int32_t* order,
                                const int32_t* seg_start, const int32_t* seg_id, int64_t segments,
                                int64_t cols, void* stream);

// x (n) f32 <- uniform in [-bound, bound] from a counter hash of (seed, i) (random weights for
// benchmarks; not a statistical-quality generator), or the constant `value`.
Status train_fill_uniform(float* x, int64_t n, uint64_t seed, float bound, void* stream);
Status train_fill_constant(float* x, int64_t n, float value, void* stream);

}  // namespace vila::cuda
