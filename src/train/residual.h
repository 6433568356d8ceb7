// Residual add for training, and the gradient join that a residual stream needs.
//
// Forward:   y = a + b                  (M, C); y may alias a or b (backward reads nothing)
// Backward:  da = dy,  db = dy          (written; either may be empty or alias dy)
// Join:      dst += src                 where two gradient paths meet (the residual stream's dx
//                                       is dy plus the branch's dx)
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

Status add_forward(const TensorView& y, const TensorView& a, const TensorView& b);
Status add_backward(const TensorView& da, const TensorView& db, const TensorView& dy);
// dst, src (M, C) f32; dst += src.
Status accumulate_grad(const TensorView& dst, const TensorView& src);

}  // namespace vila::train
