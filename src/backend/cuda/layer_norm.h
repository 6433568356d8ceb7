// LayerNorm on the GPU (torch.nn.LayerNorm, biased variance), fp32 statistics:
//   out[r, :] = (x[r, :] - mean) * rsqrt(var + eps) * weight + bias
//   mean = sum(x) / cols,  var = sum((x - mean)²) / cols   (two passes over the row)
// x fp32 or 16-bit (SigLIP's 16-bit residual stream), out fp32 or 16-bit (the block input of a
// bf16/f16 GEMM, rounded to nearest even once). The CPU oracle is ops/cpu/norm.h layer_norm
// (statistics in double there). Host-callable launcher, device pointers; no CUDA headers.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

// x (rows, cols) of x_dtype (kF32, or out_dtype when that is 16-bit); out (rows, cols) of
// out_dtype (kF32, kBF16 or kF16) at out_row_stride elements (0: cols; columns cols .. stride-1
// are left untouched); out may alias x when both are kF32 and the strides agree. weight (cols)
// fp32; bias (cols) fp32 or nullptr. stream: cudaStream_t or nullptr.
Status layer_norm(void* out, DType out_dtype, int64_t out_row_stride, const void* x, DType x_dtype,
                  const float* weight, const float* bias, int64_t rows, int64_t cols, float eps,
                  void* stream);

}  // namespace vila::cuda
