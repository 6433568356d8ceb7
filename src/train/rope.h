// Rotary position embedding (rotate-half, HF Llama / Qwen2) for training, per-token positions
// (packed sequences restart at 0 in each segment: packing.h positions_from_segments).
//
// Forward, on x (T, H, D) in place with c = cos(θ), s = sin(θ) of (T, D/2):
//   y1 = x1 c - x2 s,   y2 = x2 c + x1 s        (x1 = x[..., :D/2], x2 = x[..., D/2:])
// Backward (the transposed rotation, i.e. by -θ), on dy in place:
//   dx1 = dy1 c + dy2 s,   dx2 = dy2 c - dy1 s
// The tables (cpu::rope_cos_sin, identical to inference) are the saved state; one RopeTables
// serves q and k of every layer.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

struct RopeTables {
  int64_t tokens = 0;      // T
  int64_t half = 0;        // D / 2
  std::vector<float> cos;  // (T, D/2)
  std::vector<float> sin;  // (T, D/2)
};

// Tables for T tokens at `positions` (T), head_dim D even, base theta > 0.
Status rope_tables(RopeTables* tables, const int64_t* positions, int64_t t_count, int64_t head_dim,
                   double theta);

// x (T, H, D) f32, rotated in place (cpu::rope_apply).
Status rope_forward(const TensorView& x, const RopeTables& tables);

// grad (T, H, D) f32: dy on entry, dx on return.
Status rope_backward(const TensorView& grad, const RopeTables& tables);

}  // namespace vila::train
