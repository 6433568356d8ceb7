// Weight-streaming GEMV for decode: y (M, N) = x̂ (M, K) · W (N, K)ᵀ for a few rows (M <= 8), W in
// the compute dtype (bf16 or f16) read once at close to the memory bandwidth, fp32 accumulation.
// The input x̂ is formed on the fly by a prologue, and the result leaves through an epilogue, so a
// decode layer needs no separate norm / activation / residual kernels:
//   prologue kNone      x̂ = x                                     (x: (M, K) compute dtype)
//            kRmsNorm   x̂ = round(x * rsqrt(mean(x²) + eps) * norm_weight)
//                                                   (x: (M, K) fp32; norm_weight (K) fp32)
//            kSiluGate  x̂ = round(silu(g) * u), g = x[:, :K], u = x[:, K:2K]
//                                                   (x: (M, 2K) compute dtype; silu in fp32)
//   epilogue kStore     y (+ bias) stored as out_dtype (fp32 or the compute dtype)
//            kAddTo     out (fp32) += y (+ bias)                  (the residual add)
// round() is the compute dtype's round-to-nearest-even, the same rounding as the prefill kernels
// (rms_norm_to / silu_mul_to), so decode after prefill matches a longer prefill.
// x and out rows are at x_row_stride / out_row_stride elements (read only when M > 1); x rows must
// stay 16-byte aligned. Device pointers; x, weight and norm_weight 16-byte aligned; K % 8 == 0.
// out must not overlap x. The rms sum of squares is accumulated in double, as the CPU rms_norm
// does. stream: cudaStream_t or nullptr.
//
// Launch option:
//   programmatic_launch  programmatic dependent launch (PDL): the kernel may start while the
//                        previous kernel on the stream is still running. Each block issues its
//                        first weight tile, then waits (griddepcontrol.wait) for the previous grid
//                        to complete before it reads x, norm_weight or bias or touches out; it lets
//                        the next PDL kernel start early (griddepcontrol.launch_dependents). Safe
//                        when the weights are not written by the previous kernels; inside a CUDA
//                        graph capture it becomes a programmatic edge.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

inline constexpr int kGemvMaxRows = 8;

enum class GemvPrologue { kNone, kRmsNorm, kSiluGate };
enum class GemvEpilogue { kStore, kAddTo };

struct GemvArgs {
  void* out = nullptr;
  int64_t out_row_stride = 0;
  DType out_dtype = DType::kF32;  // kStore: kF32 or the compute dtype; kAddTo: kF32
  const void* x = nullptr;
  int64_t x_row_stride = 0;
  const void* weight = nullptr;        // (N, K) compute dtype
  const float* bias = nullptr;         // (N) fp32 or nullptr
  const float* norm_weight = nullptr;  // (K) fp32, kRmsNorm only
  float eps = 0.0f;                    // kRmsNorm only
  int rows = 0;                        // M, 1..kGemvMaxRows
  int64_t n = 0;
  int64_t k = 0;
  DType dtype = DType::kBF16;  // compute dtype: kBF16 or kF16
  GemvPrologue prologue = GemvPrologue::kNone;
  GemvEpilogue epilogue = GemvEpilogue::kStore;
  bool programmatic_launch = false;
};
Status gemv(const GemvArgs& args, void* stream);

}  // namespace vila::cuda
