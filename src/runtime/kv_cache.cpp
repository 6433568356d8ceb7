#include "runtime/kv_cache.h"

#include <algorithm>
#include <string>

namespace vila {

KvCache::KvCache(int64_t n_layers, int64_t max_seq, int64_t n_kv_heads, int64_t head_dim)
    : arena_("kv_cache", /*block_bytes=*/0),
      n_layers_(std::max<int64_t>(n_layers, 0)),
      max_seq_(std::max<int64_t>(max_seq, 0)),
      n_kv_heads_(std::max<int64_t>(n_kv_heads, 0)),
      head_dim_(std::max<int64_t>(head_dim, 0)) {
  const int64_t per_tensor = n_layers_ * max_seq_ * n_kv_heads_ * head_dim_;
  // One block holding K then V.
  auto* data =
      static_cast<float*>(arena_.alloc(static_cast<size_t>(2 * per_tensor) * sizeof(float)));
  k_ = data;
  v_ = data + per_tensor;
}

StatusOr<KvCache> KvCache::create(int64_t n_layers, int64_t max_seq, int64_t n_kv_heads,
                                  int64_t head_dim) {
  if (n_layers <= 0 || max_seq <= 0 || n_kv_heads <= 0 || head_dim <= 0) {
    return invalid_argument("kv_cache: dimensions must be positive, got layers " +
                            std::to_string(n_layers) + ", max_seq " + std::to_string(max_seq) +
                            ", kv heads " + std::to_string(n_kv_heads) + ", head_dim " +
                            std::to_string(head_dim));
  }
  return KvCache(n_layers, max_seq, n_kv_heads, head_dim);
}

Status KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) {
    return invalid_argument("kv_cache: cannot truncate to " + std::to_string(n) +
                            " positions, length is " + std::to_string(length_));
  }
  length_ = n;
  return ok_status();
}

TensorView KvCache::k(int64_t layer) const {
  return {k_ + layer * max_seq_ * n_kv_heads_ * head_dim_,
          DType::kF32,
          {max_seq_, n_kv_heads_, head_dim_}};
}

TensorView KvCache::v(int64_t layer) const {
  return {v_ + layer * max_seq_ * n_kv_heads_ * head_dim_,
          DType::kF32,
          {max_seq_, n_kv_heads_, head_dim_}};
}

Status KvCache::check_room(int64_t n) const {
  if (n < 0 || length_ + n > max_seq_) {
    return out_of_range(std::to_string(n) + " new positions at length " + std::to_string(length_) +
                        " exceed the KV cache capacity " + std::to_string(max_seq_));
  }
  return ok_status();
}

}  // namespace vila
