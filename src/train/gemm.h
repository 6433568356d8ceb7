// The one GEMM of the training ops, with a per-GEMM precision config (precision.h):
//   out (M, N) [+]= round_accum(A (M, K) · B (N, K)ᵀ + bias)
// Either operand may be stored transposed ((K, M) / (K, N) in memory), which is how the backward
// GEMMs of a Linear read dy and x without a separate transpose pass. Operands that need
// rounding or transposing are packed into fp32 scratch buffers; the product runs through
// cpu::linear (OpenBLAS sgemm split over the global thread pool, or its GEMV for few rows).
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "train/precision.h"

namespace vila::train {

enum class Layout {
  kRowMajor,    // operand stored as (rows, K)
  kTransposed,  // operand stored as (K, rows)
};

struct GemmOptions {
  Layout a_layout = Layout::kRowMajor;
  Layout b_layout = Layout::kRowMajor;
  bool accumulate = false;  // out += result instead of out = result
};

// a: (M, K) f32, or (K, M) when opts.a_layout is kTransposed; b: (N, K) f32, or (K, N).
// bias (N) f32 or empty (added in fp32 before rounding to the accumulator format).
// out (M, N) f32, must not alias a, b or bias.
// InvalidArgument for shapes or dtypes, Unimplemented for precision formats not done yet.
Status gemm(const TensorView& out, const TensorView& a, const TensorView& b,
            const GemmPrecision& precision, const GemmOptions& opts = {},
            const TensorView& bias = {});

}  // namespace vila::train
