// Token embedding lookup: rows of a (V, C) table, any of f32/bf16/f16, gathered into fp32.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

// out (n, C) f32 = table (V, C)[ids[i]]. InvalidArgument naming the position if an id is outside
// [0, V); out is left partly written in that case.
Status embedding(const TensorView& out, const TensorView& table, const int32_t* ids, int64_t n);

}  // namespace vila::cpu
