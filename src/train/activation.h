// Activations for training: GELU (erf and tanh forms) and the SiLU gate of SwiGLU MLPs.
//
// GELU erf:   y = x Φ(x) = 0.5 x (1 + erf(x / √2))
//             dy/dx = Φ(x) + x φ(x),  φ(x) = exp(-x²/2) / √(2π)
// GELU tanh:  u = β (x + κ x³), β = √(2/π), κ = 0.044715,  y = 0.5 x (1 + tanh u)
//             dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh² u) β (1 + 3 κ x²)
// SiLU gate:  y = silu(g) ⊙ u,  silu(g) = g σ(g)
//             dg = dy ⊙ u ⊙ σ(g) (1 + g (1 - σ(g))),   du = dy ⊙ silu(g)
// Forward runs the inference op (cpu::gelu / cpu::silu_mul). Saved state: none; backward reads
// the inputs again. All gradients written; dx may alias dy.
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "ops/cpu/activation.h"

namespace vila::train {

using cpu::GeluApprox;

// x, y (M, C) f32; y must not alias x.
Status gelu_forward(const TensorView& y, const TensorView& x, GeluApprox approx);
Status gelu_backward(const TensorView& dx, const TensorView& dy, const TensorView& x,
                     GeluApprox approx);

// gate, up, y (M, F) f32; y must not alias gate or up.
Status silu_gate_forward(const TensorView& y, const TensorView& gate, const TensorView& up);
// dgate, dup (M, F) written (either may alias dy, not both).
Status silu_gate_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dy,
                          const TensorView& gate, const TensorView& up);

}  // namespace vila::train
