// Token embedding for training: a gather forward and a scatter-add backward.
//
// Forward:   out (n, C) = table (V, C)[ids]            (cpu::embedding, fp32 table)
// Backward:  dtable (V, C)[ids[i]] += dout (n, C)[i]   for every i (repeated ids add up)
// Saved state: none (backward takes the ids again).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

// table (V, C) f32; out (n, C) f32. InvalidArgument naming the position of an id outside [0, V).
Status embedding_forward(const TensorView& out, const TensorView& table, const int32_t* ids,
                         int64_t n);

// dtable (V, C) f32, accumulated; dout (n, C) f32.
Status embedding_backward(const TensorView& dtable, const TensorView& dout, const int32_t* ids,
                          int64_t n);

}  // namespace vila::train
