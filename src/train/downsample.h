// Spatial-to-channel downsample of the projector (VILA flat_square_2x2 / 3x3) for training.
//
// Per item, x (s·s, C) is an s x s grid zero-padded at the end to a multiple of k (g = ceil(s/k));
// Forward (model/projector.h spatial_to_channel, the inference code):
//   out[i·g + j, (dr·k + dc)·C + c] = x[(k·i + dr)·s + (k·j + dc), c]   (0 where that is padding)
// Backward (a pure permutation, every input element read exactly once):
//   dx[(k·i + dr)·s + (k·j + dc), c] = dout[i·g + j, (dr·k + dc)·C + c]   (padding dropped)
// Saved state: none.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

// Tokens out per item for s·s tokens in and factor k: ceil(s/k)².
int64_t spatial_to_channel_tokens(int64_t side, int64_t factor);

// x (n_items, s·s, C) f32 with s·s a perfect square; out (n_items, ceil(s/k)², k·k·C) f32.
Status spatial_to_channel_forward(const TensorView& out, const TensorView& x, int64_t factor);

// dx (n_items, s·s, C) written; dout (n_items, ceil(s/k)², k·k·C).
Status spatial_to_channel_backward(const TensorView& dx, const TensorView& dout, int64_t factor);

}  // namespace vila::train
