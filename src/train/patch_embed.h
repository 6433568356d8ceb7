// Patch embedding (SigLIP nn.Conv2d with stride = kernel = p, no padding) for training.
//
// With cols (P, K) the im2col matrix of one image (K = Cin·p·p, column order (ci, ky, kx), patch
// (py, px) at row py·(Wp/p) + px) and W viewed as (C, K):
// Forward:   out (P, C) = cols · Wᵀ + b                    (cpu::patch_embed)
// Backward:  dW (C, K) += doutᵀ (C, P) · cols (P, K),  db (C) += sum over patches of dout
//            dcols (P, K) = dout · W,  dpixels = col2im(dcols)   (written; trailing pixels that
//            fill no whole patch get 0)
// All GEMMs fp32. Saved state: none (backward rebuilds cols from the pixels).
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

struct PatchEmbedGrads {
  TensorView weight;  // (C, Cin, p, p) f32, accumulated; may be empty
  TensorView bias;    // (C) f32, accumulated; may be empty
};

// pixels (N, Cin, Hp, Wp) f32; weight (C, Cin, p, p) f32; bias (C) f32 or empty;
// out (N, (Hp/p)·(Wp/p), C) f32.
Status patch_embed_forward(const TensorView& out, const TensorView& pixels,
                           const TensorView& weight, const TensorView& bias);

// dpixels (N, Cin, Hp, Wp) f32 written, or empty (pixels need no gradient, the usual case).
Status patch_embed_backward(const TensorView& dpixels, const PatchEmbedGrads& grads,
                            const TensorView& dout, const TensorView& pixels,
                            const TensorView& weight);

}  // namespace vila::train
