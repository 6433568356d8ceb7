// Rotary position embedding, rotate-half (NeoX) convention as HF Llama/Qwen2.
//
// Tables, computed in fp32 in HF's order (LlamaRotaryEmbedding, rope_type "default"):
//   inv_freq[i] = 1 / (theta ^ (float(2i) / D))                 i < D/2
//   freq[t, i]  = float(position[t]) * inv_freq[i]
//   cos[t, i]   = cos(freq[t, i]),  sin[t, i] = sin(freq[t, i])
// HF's cos/sin are cat(freq, freq) of width D; both halves are equal, so the tables here keep D/2.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// cos, sin (T, D/2) f32 for the T positions in `positions`.
Status rope_cos_sin(const TensorView& cos, const TensorView& sin, const int64_t* positions,
                    double theta);

// In place on x (T, n_head, D) f32, with cos/sin (T, D/2) from rope_cos_sin:
//   x1 = x[..., :D/2], x2 = x[..., D/2:]
//   x[..., :D/2] = x1 * cos - x2 * sin,   x[..., D/2:] = x2 * cos + x1 * sin
// Each product is rounded before the sum, as HF's (x * cos) + (rotate_half(x) * sin).
Status rope_apply(const TensorView& x, const TensorView& cos, const TensorView& sin);

}  // namespace vila::cpu
