// Softmax over the last dimension, fp32 with max subtraction.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// out[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max)); x, out (M, N) f32, out may alias x.
Status softmax(const TensorView& out, const TensorView& x);

// The same on one row of n floats, in place. Used inside attention.
void softmax_row(float* row, int64_t n);

}  // namespace vila::cpu
