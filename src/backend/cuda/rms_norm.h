// RMSNorm on the GPU: out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight (fp32).
// Host-callable launcher; device pointers; the CPU op in ops/cpu is the oracle.
#pragma once

#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

// x, out: (rows, cols) fp32 device memory; weight: (cols) fp32. stream: cudaStream_t or nullptr.
Status rms_norm_f32(float* out, const float* x, const float* weight, int64_t rows, int64_t cols,
                    float eps, void* stream);

}  // namespace vila::cuda
