// Binding checkpoint tensors as op weights: shape-checked views into the mmapped safetensors.
#pragma once

#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "format/safetensors.h"
#include "ops/cpu/matmul.h"

namespace vila {

// `name` with exactly `shape` and a dtype the CPU ops read (f32 / bf16 / f16); the error names the
// file, the tensor and the shapes or dtype.
StatusOr<TensorView> checkpoint_weight(const Checkpoint& ckpt, const std::string& name,
                                       const Shape& shape);

// `<base>.weight` (out, in) and, when `has_bias`, `<base>.bias` (out).
StatusOr<cpu::LinearWeight> checkpoint_linear(const Checkpoint& ckpt, const std::string& base,
                                              int64_t out_features, int64_t in_features,
                                              bool has_bias);

}  // namespace vila
