// Token selection on the GPU, so decode needs no host round trip for the logits:
//   argmax          greedy: the lowest index of the maximum of each row (ties as the CPU sampler)
//   sample_top_p    temperature, top-k (k <= kSampleMaxTopK, 0 = kSampleMaxTopK) and top-p over
//                   each row, one uniform draw per row from a counter-based RNG (seed, step), so a
//                   replayed CUDA graph draws fresh numbers when step (device memory) advances.
// logits: (rows, vocab) fp32 at row_stride; only the first `vocab` columns are candidates; NaN
// ranks below every number. out_ids: (rows) int32 device. sample_top_p: top_k is clamped to vocab,
// step nullptr reads as 0, vocab <= 262144 (larger: Unimplemented). stream: cudaStream_t or
// nullptr.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

inline constexpr int kSampleMaxTopK = 64;

// workspace: null (one block per row), or argmax_workspace_bytes(rows) bytes of device memory
// that are zero before the first call (every call leaves them zero again): then a long row is
// split over several blocks, which merge their maxima with 64-bit atomicMax and the last one to
// finish writes the id (a one-row decode step's argmax over 152k logits: one block is
// latency-bound at ~25 us). The result is the same either way.
Status argmax_rows(int32_t* out_ids, const float* logits, int rows, int64_t vocab,
                   int64_t row_stride, void* stream, void* workspace = nullptr);
size_t argmax_workspace_bytes(int rows);

struct SampleArgs {
  int32_t* out_ids = nullptr;
  const float* logits = nullptr;
  int rows = 0;
  int64_t vocab = 0;
  int64_t row_stride = 0;
  float temperature = 1.0f;  // > 0
  int top_k = 0;             // 0 = kSampleMaxTopK
  float top_p = 1.0f;        // (0, 1]
  uint64_t seed = 0;
  const uint64_t* step = nullptr;  // device: advanced by the caller between draws
};
Status sample_top_p(const SampleArgs& args, void* stream);

}  // namespace vila::cuda
