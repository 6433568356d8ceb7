// Token embedding gather on the GPU: out (n, C) fp32 = table (V, C) fp32 [ids[i]].
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

// ids: n int32 in device memory. An id outside [0, V) yields a row of NaN (the launcher cannot see
// device ids; callers validate them on the host first). stream: cudaStream_t or nullptr.
Status embedding_f32(float* out, const float* table, const int32_t* ids, int64_t n, int64_t vocab,
                     int64_t cols, void* stream);

// The 16-bit engine's gather: table (V, C) in `dtype` (kBF16 or kF16), out (n, C) fp32 (exact
// widening). Same id contract as embedding_f32.
Status embedding_to_f32(float* out, const void* table, DType dtype, const int32_t* ids, int64_t n,
                        int64_t vocab, int64_t cols, void* stream);

// Fills n values of `dtype` (kF32, kBF16 or kF16) at dst with uniform values in [lo, hi) from a
// counter-based hash of (seed, index): random weights of real shapes built on the device
// (`vila bench`), reproducible for a seed.
Status fill_uniform(void* dst, DType dtype, int64_t n, float lo, float hi, uint64_t seed,
                    void* stream);

}  // namespace vila::cuda
