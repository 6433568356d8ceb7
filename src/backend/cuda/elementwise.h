// Elementwise fp32 ops on the GPU, in the CPU ops' formulas (ops/cpu/activation.h):
//   add_inplace   x += y                     (the residual add)
//   silu_mul      out = silu(gate) * up,  silu(g) = g / (1 + exp(-g))
//   f32_to_bf16   round-to-nearest-even, as core/dtype.h f32_to_bf16 (activations for bf16 GEMMs)
//   convert_dtype fp32 <-> bf16 / f16 (the vision tower's 16-bit residual stream and features)
// n elements, device pointers; 16-byte aligned pointers with n % 4 == 0 take 128-bit accesses.
// stream: cudaStream_t or nullptr.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

Status add_inplace_f32(float* x, const float* y, int64_t n, void* stream);
// out may alias gate or up.
Status silu_mul_f32(float* out, const float* gate, const float* up, int64_t n, void* stream);
// out: n uint16 bf16 values.
Status f32_to_bf16(uint16_t* out, const float* x, int64_t n, void* stream);
// out (n) of out_dtype = x (n) of x_dtype: fp32 to bf16 / f16 (nearest even) or bf16 / f16 to
// fp32 (exact). Other pairs: Unimplemented.
Status convert_dtype(void* out, DType out_dtype, const void* x, DType x_dtype, int64_t n,
                     void* stream);

// The prefill SwiGLU of the 16-bit engine: gate_up (rows, 2F) in `dtype` (gate columns first, then
// up), out (rows, F) in `dtype` = round(silu(g) * u) computed in fp32 — the rounding of gemv.h's
// kSiluGate prologue. dtype: kBF16 or kF16.
Status silu_mul_to(void* out, const void* gate_up, int64_t rows, int64_t f, DType dtype,
                   void* stream);

}  // namespace vila::cuda
