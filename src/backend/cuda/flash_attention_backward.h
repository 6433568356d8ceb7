// FlashAttention-2 backward on the GPU (training): the gradients of the dense attention of
// flash_attention.h (flash_attention_dense, causal or full, GQA) without materialising the (T, T)
// scores. Per sequence, query head h (KV head g = h / (H / Hkv)), query row i and visible key j:
//   P_ij = exp(scale · q_i · k_j − lse_i)             (lse from the forward, natural log)
//   Δ_i  = Σ_d dout_id · out_id                       (= Σ_j P_ij dP_ij)
//   dP_ij = dout_i · v_j,   dS_ij = P_ij (dP_ij − Δ_i)
//   dq_i = scale Σ_j dS_ij k_j,   dk_j += scale Σ_i dS_ij q_i,   dv_j += Σ_i P_ij dout_i
// dk / dv of a KV head are summed over the H / Hkv query heads that read it. The CPU oracle is
// train/attention.h (attention_backward).
//
// Layout (as DenseAttentionArgs): batch independent sequences of seq rows; row (b·seq + s) of q,
// out, dout holds n_head·head_dim bf16 values at its row stride, k and v n_head_kv·head_dim.
// Outputs are fp32: dq (R, H·D), dk, dv (R, Hkv·D) at their row strides (R = batch·seq); the op
// zeroes them (only the H·D or Hkv·D values of each row: the gaps between rows are not touched)
// and accumulates with atomics, so the result is exact up to fp32 summation order. lse: the
// (R, n_head) f32 log-sum-exp that flash_attention_dense writes when given an `lse` pointer.
// Supported: bf16 inputs, head_dim 64, 72, 80, 128 (others: Unimplemented). 16-bit inputs need
// 16-byte aligned rows (strides multiples of 8 elements, <= 2^23); fp32 outputs need 8-byte
// aligned rows (even strides). stream: cudaStream_t or nullptr. Bad arguments return
// InvalidArgument before anything is launched.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

struct AttentionBackwardArgs {
  float* dq = nullptr;  // (R, H·D) f32, written
  int64_t dq_row_stride = 0;
  float* dk = nullptr;  // (R, Hkv·D) f32, written
  int64_t dk_row_stride = 0;
  float* dv = nullptr;  // (R, Hkv·D) f32, written
  int64_t dv_row_stride = 0;
  const void* q = nullptr;  // (R, H·D) bf16
  int64_t q_row_stride = 0;
  const void* k = nullptr;  // (R, Hkv·D) bf16
  int64_t k_row_stride = 0;
  const void* v = nullptr;  // (R, Hkv·D) bf16
  int64_t v_row_stride = 0;
  const void* out = nullptr;  // (R, H·D) bf16, the forward's output
  int64_t out_row_stride = 0;
  const void* dout = nullptr;  // (R, H·D) bf16
  int64_t dout_row_stride = 0;
  const float* lse = nullptr;  // (R, H) f32 from flash_attention_dense
  int batch = 0;
  int seq = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  bool causal = true;
  float scale = 0.0f;  // the forward's
  DType dtype = DType::kBF16;
  void* workspace = nullptr;  // attention_backward_workspace_bytes(...) bytes, 16-byte aligned
};

// Scratch of the op: Δ and lse · log2 e per (sequence, head, row), rows padded to the query block.
size_t attention_backward_workspace_bytes(const AttentionBackwardArgs& args);

// Two kernels: a preprocess (Δ, lse, zeroed outputs), then one block per (head, 64-key block,
// sequence) looping over the query blocks that see its keys.
Status flash_attention_backward(const AttentionBackwardArgs& args, void* stream);

}  // namespace vila::cuda
