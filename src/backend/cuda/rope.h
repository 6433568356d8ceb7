// Rotary position embedding on the GPU, rotate-half (NeoX) as HF Llama/Qwen2; the CPU op
// (ops/cpu/rope.h) is the oracle and these reproduce its arithmetic:
//   inv_freq[i] = 1 / (theta ^ (float(2i) / D))          host, fp32, exactly as the CPU op
//   freq[t, i]  = float(p0 + t) * inv_freq[i]            device, fp32 multiply
//   cos, sin    = cos/sin of freq evaluated in double, rounded to fp32
//   x[..., :D/2], x[..., D/2:] = x1*cos - x2*sin, x2*cos + x1*sin   (each product rounded)
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace vila::cuda {

// The (D/2) inverse frequencies, computed on the host as cpu::rope_cos_sin does.
std::vector<float> rope_inv_freq(int64_t half, double theta);

// cos, sin (T, half) fp32 for positions p0 .. p0+T-1; inv_freq (half) device fp32.
Status rope_cos_sin_f32(float* cos, float* sin, const float* inv_freq, int64_t p0, int64_t t_count,
                        int64_t half, void* stream);

// In place on x (T, n_head, D) fp32 with cos/sin (T, D/2). D even.
Status rope_apply_f32(float* x, const float* cos, const float* sin, int64_t t_count,
                      int64_t n_head, int64_t head_dim, void* stream);

}  // namespace vila::cuda
