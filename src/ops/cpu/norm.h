// Row normalisations over the last dimension, fp32 statistics.
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// HF Qwen2RMSNorm / LlamaRMSNorm:
//   out = weight * (x * rsqrt(mean(x²) + eps))
// x, out (M, C) f32 (out may alias x); weight (C) f32 | bf16 | f16.
Status rms_norm(const TensorView& out, const TensorView& x, const TensorView& weight, float eps);

// torch.nn.LayerNorm (biased variance):
//   out = (x - mean(x)) * rsqrt(var(x) + eps) * weight + bias
// x, out (M, C) f32 (out may alias x); weight, bias (C) f32 | bf16 | f16; bias may be empty.
Status layer_norm(const TensorView& out, const TensorView& x, const TensorView& weight,
                  const TensorView& bias, float eps);

}  // namespace vila::cpu
