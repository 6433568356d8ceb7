// Token embedding gather on the GPU: out (n, C) fp32 = table (V, C) fp32 [ids[i]].
#pragma once

#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

// ids: n int32 in device memory. An id outside [0, V) yields a row of NaN (the launcher cannot see
// device ids; callers validate them on the host first). stream: cudaStream_t or nullptr.
Status embedding_f32(float* out, const float* table, const int32_t* ids, int64_t n, int64_t vocab,
                     int64_t cols, void* stream);

}  // namespace vila::cuda
