// Per-GEMM precision configs for training: every Linear runs three GEMMs (forward, input gradient,
// weight gradient) and each one names the number format of its two operands and of its
// accumulator. The FP8 (COAT), INT8 (Jetfire) and INT4 recipes plug in here.
//
// Every GEMM is written as out (M, N) = A (M, K) · B (N, K)ᵀ, the contraction dimension K last in
// both operands. For a Linear y = x Wᵀ with x (M, K), W (N, K), dy (M, N):
//   forward      y  (M, N) = x  (M, K) · W  (N, K)ᵀ     A = x,   B = W
//   input grad   dx (M, K) = dy (M, N) · Wᵀ (K, N)ᵀ     A = dy,  B = Wᵀ
//   weight grad  dW (N, K) = dyᵀ (N, M) · xᵀ (K, M)ᵀ    A = dyᵀ, B = xᵀ
// A quantisation granularity refers to the operand in that (rows, K) layout: per-row is one
// scale per row (rows of dyᵀ are the columns of dy), per-block one scale per 32 x 32 tile,
// per-tensor one scale for all.
//
// CPU emulation: operands are rounded (or quantised and dequantised) into fp32 buffers, the GEMM
// runs in fp32, and its result is rounded to the accumulator format (what a GPU GEMM with that
// accumulator writes out). fp32, bf16 and fp16 are implemented (rounding to nearest even, no
// scaling, the granularity is ignored; fp16 overflows to inf past 65504 as on the GPU); fp8
// e4m3 / e5m2 and int8 return Unimplemented for now.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::train {

enum class Granularity {
  kPerTensor,
  kPerRow,
  kPerBlock,  // kQuantBlock x kQuantBlock tiles
};

// Side of a per-block quantisation tile.
constexpr int64_t kQuantBlock = 32;

// Number format of one GEMM operand: kF32, kBF16, kF16, kF8E4M3, kF8E5M2 or kI8.
struct OperandFormat {
  DType dtype = DType::kF32;
  Granularity granularity = Granularity::kPerTensor;
};

struct GemmPrecision {
  OperandFormat a;
  OperandFormat b;
  DType accum = DType::kF32;  // kF32, kBF16 or kF16
};

// The three GEMMs of one Linear.
struct LinearPrecision {
  GemmPrecision forward;
  GemmPrecision input_grad;
  GemmPrecision weight_grad;
};

// "fp32": everything fp32. "bf16": bf16 operands with fp32 accumulation in all three GEMMs
// (PyTorch autocast / cuBLAS bf16 with an fp32 accumulator). InvalidArgument for other names.
StatusOr<LinearPrecision> precision_preset(std::string_view name);

// OK when every format of `p` is implemented; InvalidArgument for a dtype that is no GEMM format,
// Unimplemented for fp8 / int8. `gemm` names the GEMM in the message ("forward").
Status check_gemm_precision(const GemmPrecision& p, const std::string& gemm);

// Rounds (or quantises and dequantises) `rows` x `cols` fp32 values in place to `format`, the
// values laid out as that GEMM operand (row-major, contraction dimension last). Same errors as
// check_gemm_precision.
Status quantize_operand(float* data, int64_t rows, int64_t cols, const OperandFormat& format);

// Rounds n values in place to the accumulator format `accum` (kF32 leaves them).
Status round_to_accum(float* data, int64_t n, DType accum);

// "bf16/bf16->f32" style description of a GEMM config, for messages and logs.
std::string gemm_precision_name(const GemmPrecision& p);

}  // namespace vila::train
