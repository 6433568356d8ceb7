// Rotary embedding + KV-cache append for the paged cache (kv_pages.h), prefill and decode alike.
// Input: the fused QKV projection of `rows` tokens, fp32 (rows, (H + 2*Hkv) * D) at qkv_row_stride
// (q heads, then k heads, then v heads; bias already added). Token r sits at position
// positions[r] of sequence seq_ids[r] (device int32). The kernel
//   - rotates q and k (rotate-half, angle = position * inv_freq[i] in fp32, as ops/cpu/rope.h),
//   - writes q rounded to the compute dtype to q_out (rows, H*D) at q_out_row_stride,
//   - writes k (rotated) and v, rounded, into the pages of seq_ids[r] at positions[r].
// inv_freq: (D/2) fp32 device (rope_inv_freq in rope.h). Rows with few tokens (decode) spread
// over several blocks per row. A position outside
// [0, max_pages * kKvPageSize) or a negative page id writes no K/V (q is still written).
// stream: cudaStream_t or nullptr.
#pragma once

#include <cstdint>

#include "backend/cuda/kv_pages.h"
#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

struct KvAppendArgs {
  void* q_out = nullptr;
  int64_t q_out_row_stride = 0;
  const float* qkv = nullptr;
  int64_t qkv_row_stride = 0;
  const int32_t* positions = nullptr;  // (rows)
  const int32_t* seq_ids = nullptr;    // (rows): row of kv.block_table
  const float* inv_freq = nullptr;     // (D/2)
  // Optional cos / sin tables (table_positions, D/2) fp32 of rope_cos_sin_f32 with p0 = 0 (the
  // same formula, so bit-identical): a position below table_positions reads them instead of
  // evaluating cos / sin in double, which costs a one-row decode step ~13 us on the H100.
  const float* rope_cos = nullptr;
  const float* rope_sin = nullptr;
  int64_t table_positions = 0;
  PagedKv kv;
  int rows = 0;
  int n_head = 0;
  DType dtype = DType::kBF16;
};
Status rope_kv_append(const KvAppendArgs& args, void* stream);

}  // namespace vila::cuda
