// The parameters of a FlashAttention forward block and the two ways its K/V rows are found,
// shared by the mma.sync kernel (flash_attention.cu) and the Hopper wgmma kernel
// (flash_attention_wgmma.cu): PagedLoader (the LLM's paged KV cache) and DenseLoader (contiguous
// strided rows, SigLIP).
#pragma once

#include <cstdint>

#include "backend/cuda/kv_pages.h"

namespace vila::cuda::flash {

// Everything a forward block needs; the loader decides which fields it reads.
struct FwdParams {
  void* out = nullptr;
  int64_t out_stride = 0;
  const void* q = nullptr;
  int64_t q_stride = 0;
  const void* k = nullptr;  // dense: row 0 of K; paged: the K page pool
  const void* v = nullptr;
  int64_t k_stride = 0;  // dense only (paged rows are head_dim apart)
  int64_t v_stride = 0;
  const int32_t* block_table = nullptr;  // paged
  int max_pages = 0;
  const int32_t* q_start = nullptr;  // paged
  const int32_t* kv_len = nullptr;   // paged
  int seq = 0;                       // dense
  int n_head = 0;
  int n_head_kv = 0;
  int group = 1;  // n_head / n_head_kv
  int head_dim = 0;
  bool causal = true;
  float scale_log2 = 0.0f;  // scale · log2 e
  float* lse = nullptr;     // dense, optional: (rows, n_head) natural log-sum-exp
};

// Sequence b: its first query row in q / out, its query count and its key count.
struct SeqInfo {
  int64_t q_row0;
  int q_len;
  int kv_len;
};

// K/V from the paged cache: tile j of (sequence b, KV head hk) is page block_table[b][j], rows
// head_dim apart. kv_len is clamped to the pages the table can name.
struct PagedLoader {
  static constexpr bool kWritesLse = false;
  __device__ static SeqInfo sequence(const FwdParams& p, int b) {
    const int q0 = p.q_start[b];
    const int kv = min(p.kv_len[b], p.max_pages * kKvPageSize);
    return {q0, p.q_start[b + 1] - q0, max(kv, 0)};
  }
  template <typename T, int kBlockN>
  __device__ static const T* k_tile(const FwdParams& p, int b, int hk, int j) {
    static_assert(kBlockN == kKvPageSize, "a K/V tile is one page");
    return page_rows<T>(p.k, p, b, hk, j);
  }
  template <typename T, int kBlockN>
  __device__ static const T* v_tile(const FwdParams& p, int b, int hk, int j) {
    static_assert(kBlockN == kKvPageSize, "a K/V tile is one page");
    return page_rows<T>(p.v, p, b, hk, j);
  }
  __device__ static int64_t k_stride(const FwdParams& p) { return p.head_dim; }
  __device__ static int64_t v_stride(const FwdParams& p) { return p.head_dim; }
  template <typename T>
  __device__ static const T* page_rows(const void* pool, const FwdParams& p, int b, int hk, int j) {
    const int64_t page = p.block_table[static_cast<int64_t>(b) * p.max_pages + j];
    return static_cast<const T*>(pool) + (page * p.n_head_kv + hk) * kKvPageSize * p.head_dim;
  }
};

// K/V as strided rows: sequence b owns rows b*seq .. b*seq+seq-1 of q, k, v and out.
struct DenseLoader {
  static constexpr bool kWritesLse = true;  // when FwdParams::lse is set
  __device__ static SeqInfo sequence(const FwdParams& p, int b) {
    return {static_cast<int64_t>(b) * p.seq, p.seq, p.seq};
  }
  template <typename T, int kBlockN>
  __device__ static const T* k_tile(const FwdParams& p, int b, int hk, int j) {
    return strided_rows<T>(p.k, p.k_stride, p, b, hk, int64_t{j} * kBlockN);
  }
  template <typename T, int kBlockN>
  __device__ static const T* v_tile(const FwdParams& p, int b, int hk, int j) {
    return strided_rows<T>(p.v, p.v_stride, p, b, hk, int64_t{j} * kBlockN);
  }
  __device__ static int64_t k_stride(const FwdParams& p) { return p.k_stride; }
  __device__ static int64_t v_stride(const FwdParams& p) { return p.v_stride; }
  template <typename T>
  __device__ static const T* strided_rows(const void* base, int64_t stride, const FwdParams& p,
                                          int b, int hk, int64_t key0) {
    const int64_t row = static_cast<int64_t>(b) * p.seq + key0;
    return static_cast<const T*>(base) + row * stride + static_cast<int64_t>(hk) * p.head_dim;
  }
};

}  // namespace vila::cuda::flash
