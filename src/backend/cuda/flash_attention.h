// Fused attention on the GPU (bf16 / f16 in, fp32 softmax and accumulation, compute dtype out):
//   flash_attention_paged   prefill / extend: new queries of several sequences against their
//                           paged KV cache (causal, GQA) — the LLM's prefill.
//   flash_attention_dense   queries against contiguous K/V rows, causal or not (SigLIP: full
//                           attention, head_dim 72).
//   decode_attention_paged  one query per sequence against its paged cache, the KV length split
//                           across blocks (flash-decoding) and merged — the LLM's decode step.
// out = softmax(scale * q kᵀ [+ causal mask]) v per head; query head h reads KV head
// h / (n_head / n_head_kv). Supported head_dim: 16, 32, 64, 72, 80, 96, 128 (others:
// Unimplemented). Device pointers; row strides are in elements. stream: cudaStream_t or nullptr.
// Rows are read 16 bytes at a time: q, k, v (and the page pools) must be 16-byte aligned and their
// row strides multiples of 8 elements (<= 2^23); out of the prefill kernels likewise. Bad arguments
// return InvalidArgument before anything is launched.
// The CPU oracles are ops/cpu/attention.h (causal) and ops/cpu/attention_full.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/cuda/kv_pages.h"
#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

// Which forward kernel flash_attention_dense / flash_attention_paged run: kAuto the Hopper
// warpgroup-MMA kernel where it applies (an sm_90 GPU in an sm_90a build; dense: non-causal,
// head_dim 72, no lse; paged: head_dim 128; see flash_attention_wgmma.h) and the mma.sync kernel
// elsewhere; kMma always the mma.sync kernel; kWgmma the wgmma kernel or Unimplemented.
// VILA_FLASH_KERNEL=mma in the environment turns kAuto into kMma (an A/B switch for benchmarks).
enum class FlashKernel { kAuto, kMma, kWgmma };

// Sequence b owns query rows q_start[b] .. q_start[b+1]-1 of q (q_len = their count); they sit at
// positions kv_len[b] - q_len .. kv_len[b] - 1, and keys 0 .. kv_len[b]-1 are in kv (the new
// keys already appended). Causal: the query at position p sees keys 0..p.
// q: rows of n_head*head_dim values at q_row_stride; out likewise at out_row_stride.
// q_start (batch+1) and kv_len (batch) are device int32; max_q_len bounds q_len (host, sizes the
// grid). dtype: kBF16 or kF16 (q, kv and out).
struct PagedPrefillArgs {
  void* out = nullptr;
  int64_t out_row_stride = 0;
  const void* q = nullptr;
  int64_t q_row_stride = 0;
  PagedKv kv;
  const int32_t* q_start = nullptr;
  const int32_t* kv_len = nullptr;
  int batch = 0;
  int max_q_len = 0;
  int n_head = 0;
  float scale = 0.0f;
  DType dtype = DType::kBF16;
  FlashKernel kernel = FlashKernel::kAuto;
};
Status flash_attention_paged(const PagedPrefillArgs& args, void* stream);

// batch independent sequences of seq rows each: row (b*seq + s) of q holds n_head*head_dim values
// at q_row_stride (k, v: n_head_kv*head_dim values at their strides; out like q). lse (optional,
// for the training backward, flash_attention_backward.h): (batch*seq, n_head) f32, written with
// the natural log-sum-exp of each row's scaled scores, log Σ_j exp(scale · q·k_j).
struct DenseAttentionArgs {
  void* out = nullptr;
  int64_t out_row_stride = 0;
  const void* q = nullptr;
  int64_t q_row_stride = 0;
  const void* k = nullptr;
  int64_t k_row_stride = 0;
  const void* v = nullptr;
  int64_t v_row_stride = 0;
  int batch = 0;
  int seq = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  bool causal = false;
  float scale = 0.0f;
  DType dtype = DType::kBF16;
  float* lse = nullptr;  // (batch*seq, n_head) f32, or null
  FlashKernel kernel = FlashKernel::kAuto;
};
Status flash_attention_dense(const DenseAttentionArgs& args, void* stream);

// One query row per sequence (row b of q at q_row_stride, out at out_row_stride) at position
// kv_len[b]-1, attending to keys 0 .. kv_len[b]-1. max_kv_len (host) bounds every kv_len and fixes
// the grid, so a captured CUDA graph replays for any lengths up to it (kv_len is read on the
// device). workspace: decode_attention_workspace_bytes(...) bytes of 16-byte aligned device memory
// (0, and workspace may be null, when max_kv_len <= 128: one split writes out directly). Two
// kernels; the second is a programmatic dependent launch (fine inside a CUDA graph).
struct PagedDecodeArgs {
  void* out = nullptr;
  int64_t out_row_stride = 0;
  const void* q = nullptr;
  int64_t q_row_stride = 0;
  PagedKv kv;
  const int32_t* kv_len = nullptr;
  int batch = 0;
  int max_kv_len = 0;
  int n_head = 0;
  float scale = 0.0f;
  DType dtype = DType::kBF16;
  void* workspace = nullptr;
};
size_t decode_attention_workspace_bytes(int batch, int n_head, int head_dim, int max_kv_len);
Status decode_attention_paged(const PagedDecodeArgs& args, void* stream);

}  // namespace vila::cuda
