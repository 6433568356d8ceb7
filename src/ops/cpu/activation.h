// Elementwise activations, fp32, in PyTorch's formulas.
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// SwiGLU: out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
// gate, up, out (M, F) f32; out may alias gate or up.
Status silu_mul(const TensorView& out, const TensorView& gate, const TensorView& up);

enum class GeluApprox {
  kErf,   // nn.GELU(), "gelu":            0.5 x (1 + erf(x / sqrt 2))
  kTanh,  // "gelu_pytorch_tanh" (SigLIP): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³)))
};

// out = gelu(x), x and out f32 of equal shape; out may alias x.
Status gelu(const TensorView& out, const TensorView& x, GeluApprox approx);

}  // namespace vila::cpu
