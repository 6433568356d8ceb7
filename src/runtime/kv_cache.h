// KvCache: keys and values of every layer for one sequence, fp32, contiguous.
//
//   K, V of layer l: (max_seq, Hkv, D)   row p holds position p; rows [0, length()) are valid
//
// All layers come from one allocation (Arena "kv_cache"), made once at construction.
// The model writes the K/V of positions [length, length + n) into k(l)/v(l) and then calls
// commit(n); truncate() rolls back (speculative decoding, prompt-cache reuse).
//
// Later variants keep this surface per sequence: a paged cache (fixed-size pages + a block table
// per sequence, as vLLM/FlashInfer) for many sequences sharing one pool, and low-precision
// (bf16/fp8) storage. Attention would then take a page table instead of the contiguous views.
#pragma once

#include <cstdint>

#include "core/arena.h"
#include "core/status.h"
#include "core/tensor.h"

namespace vila {

class KvCache {
 public:
  // Negative dimensions count as 0; a cache with max_seq 0 holds nothing (forward: OutOfRange).
  KvCache(int64_t n_layers, int64_t max_seq, int64_t n_kv_heads, int64_t head_dim);
  // The same, but InvalidArgument if a dimension is not positive.
  static StatusOr<KvCache> create(int64_t n_layers, int64_t max_seq, int64_t n_kv_heads,
                                  int64_t head_dim);

  KvCache(KvCache&&) = default;
  KvCache& operator=(KvCache&&) = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t length() const { return length_; }     // positions filled
  int64_t capacity() const { return max_seq_; }  // positions that fit
  int64_t remaining() const { return max_seq_ - length_; }
  int64_t n_layers() const { return n_layers_; }
  int64_t n_kv_heads() const { return n_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  size_t bytes() const { return arena_.bytes_used(); }

  // Forgets every position (memory is kept).
  void reset() { length_ = 0; }
  // Keeps the first n positions. InvalidArgument unless 0 <= n <= length().
  Status truncate(int64_t n);

  // (max_seq, Hkv, D) f32 views of one layer.
  TensorView k(int64_t layer) const;
  TensorView v(int64_t layer) const;

  // OutOfRange "... n new positions at length L exceed the KV cache capacity C" if they do not fit.
  Status check_room(int64_t n) const;
  // Marks n more positions as valid after their K/V were written. Call check_room first.
  void commit(int64_t n) { length_ += n; }

 private:
  Arena arena_;
  float* k_ = nullptr;  // (L, max_seq, Hkv, D)
  float* v_ = nullptr;  // (L, max_seq, Hkv, D)
  int64_t n_layers_ = 0;
  int64_t max_seq_ = 0;
  int64_t n_kv_heads_ = 0;
  int64_t head_dim_ = 0;
  int64_t length_ = 0;
};

}  // namespace vila
