// The paged KV cache layout shared by the attention kernels, the K/V append kernel and the engine.
//
// One layer's cache is two page pools, K and V, each (num_pages, Hkv, kKvPageSize, D) in the
// compute dtype (bf16 or f16): a page holds kKvPageSize consecutive positions of one sequence for
// every KV head, and one head's rows of a page are contiguous (kKvPageSize x D), so an attention
// tile of kKvPageSize keys is one contiguous block. Position p of sequence b lives in page
// block_table[b * max_pages + p / kKvPageSize], row p % kKvPageSize. Pages are handed out by the
// engine (model/llm_engine.cpp); sequences that share a prefix may point at the same pages.
#pragma once

#include <cstdint>

namespace vila::cuda {

inline constexpr int kKvPageSize = 64;

struct PagedKv {
  void* k = nullptr;                     // (num_pages, Hkv, kKvPageSize, D) compute dtype
  void* v = nullptr;                     // same layout
  const int32_t* block_table = nullptr;  // (batch, max_pages) device: page ids per sequence
  int max_pages = 0;                     // row stride of block_table
  int n_head_kv = 0;                     // Hkv
  int head_dim = 0;                      // D
};

}  // namespace vila::cuda
