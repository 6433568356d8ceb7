// RMSNorm and LayerNorm for training, over the last dimension C of x (M, C).
//
// RMSNorm (Qwen2 / Llama):  r = 1 / sqrt(mean_i(x_i²) + eps),  x̂ = x r,  y = w ⊙ x̂
//   backward: g = dy ⊙ w
//             dx = r (g - x̂ · mean_i(g_i x̂_i))          (written)
//             dw += sum over rows of dy ⊙ x̂               (accumulated)
// LayerNorm (SigLIP, projector; biased variance):
//             μ = mean_i(x_i),  r = 1 / sqrt(mean_i((x_i - μ)²) + eps),  x̂ = (x - μ) r,
//             y = w ⊙ x̂ + b
//   backward: g = dy ⊙ w
//             dx = r (g - mean_i(g_i) - x̂ · mean_i(g_i x̂_i))   (written)
//             dw += sum over rows of dy ⊙ x̂,  db += sum over rows of dy   (accumulated)
// Forward runs the inference op (cpu::rms_norm / cpu::layer_norm, so outputs are bit-identical)
// and saves the per-row statistics computed the same way (double sums, fp32 results).
#pragma once

#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

struct RmsNormSaved {
  std::vector<float> rstd;  // (M) r of every row
};

struct LayerNormSaved {
  std::vector<float> mean;  // (M) μ of every row
  std::vector<float> rstd;  // (M) r of every row
};

struct NormGrads {
  TensorView weight;  // (C) f32, accumulated; may be empty
  TensorView bias;    // (C) f32, accumulated; may be empty (LayerNorm only)
};

// x, y (M, C) f32, y must not alias x; weight (C) f32.
Status rms_norm_forward(const TensorView& y, const TensorView& x, const TensorView& weight,
                        float eps, RmsNormSaved* saved);
// dx (M, C) written (may be empty; may alias dy).
Status rms_norm_backward(const TensorView& dx, const NormGrads& grads, const TensorView& dy,
                         const TensorView& x, const TensorView& weight, const RmsNormSaved& saved);

// As above; bias (C) f32 or empty.
Status layer_norm_forward(const TensorView& y, const TensorView& x, const TensorView& weight,
                          const TensorView& bias, float eps, LayerNormSaved* saved);
Status layer_norm_backward(const TensorView& dx, const NormGrads& grads, const TensorView& dy,
                           const TensorView& x, const TensorView& weight,
                           const LayerNormSaved& saved);

}  // namespace vila::train
