// Patch embedding: nn.Conv2d(Cin, C, kernel_size=p, stride=p, padding=0, bias) followed by
// flatten(2).transpose(1, 2), as in HF SiglipVisionEmbeddings. Implemented as im2col + linear.
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// pixels (N, Cin, Hp, Wp) f32; weight (C, Cin, p, p) f32 | bf16 | f16; bias (C) or empty.
// out (N, (Hp/p) * (Wp/p), C) f32: patch (py, px) is row py * (Wp/p) + px (row-major patches).
// Trailing pixels that do not fill a whole patch are ignored (a valid convolution).
Status patch_embed(const TensorView& out, const TensorView& pixels, const TensorView& weight,
                   const TensorView& bias);

}  // namespace vila::cpu
