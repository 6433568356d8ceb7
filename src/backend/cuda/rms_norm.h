// RMSNorm on the GPU: out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * weight (fp32).
// Host-callable launcher; device pointers; the CPU op in ops/cpu is the oracle.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

// x, out: (rows, cols) fp32 device memory; weight: (cols) fp32. stream: cudaStream_t or nullptr.
Status rms_norm_f32(float* out, const float* x, const float* weight, int64_t rows, int64_t cols,
                    float eps, void* stream);

// The prefill form for the 16-bit engine: x (rows, cols) fp32, out (rows, cols) in `dtype` (kBF16
// or kF16) = round(x * rsqrt(mean(x^2) + eps) * weight) — the rounding gemv.h's kRmsNorm prologue
// uses, so prefill and decode feed the GEMMs the same values.
Status rms_norm_to(void* out, DType dtype, const float* x, const float* weight, int64_t rows,
                   int64_t cols, float eps, void* stream);

}  // namespace vila::cuda
