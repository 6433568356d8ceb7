// linear: out = in · weightᵀ + bias, the PyTorch nn.Linear convention, fp32 activations and
// accumulation, weights read in their checkpoint dtype (f32 / bf16 / f16) straight from the mmap.
//
// Paths (LinearAlgo::kAuto):
//   few rows (decode, short    threaded GEMV over output rows, converting weights on the fly, so a
//   chunks; see                bf16 checkpoint moves half the bytes of fp32 (decode is memory
//   linear_gemv_max_rows)      bound); OpenBLAS sgemm is slow at small M
//   M larger, f32 weights      cblas_sgemm per thread over its slice of output columns
//   M larger, bf16/f16         per thread: weight row-panels converted into an fp32 panel, sgemm
//                              per panel
//
// Threading: everything runs on ThreadPool::global(). The first GEMM sets OpenBLAS to one thread
// (openblas_set_num_threads(1), process-wide) so that OpenBLAS's spinning workers never compete
// with the pool for cores; callers that want a threaded OpenBLAS sgemm must split it themselves.
//
// Later precision recipes (per-GEMM config) and quantized weights (int4 + scales, fp8 + block
// scales) extend LinearWeight with scale tensors and LinearOptions with the recipe; callers that
// pass a LinearWeight keep working.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::cpu {

struct LinearWeight {
  TensorView weight;  // (N, K) f32 | bf16 | f16
  TensorView bias;    // (N) f32 | bf16 | f16, or empty

  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const { return weight.dim(1); }
  bool has_bias() const { return !bias.empty(); }
};

enum class LinearAlgo {
  kAuto,  // GEMV for few rows, (panel) sgemm otherwise
  kGemv,  // threaded GEMV at any M (tests, and very skinny GEMMs)
  kGemm,  // (panel) sgemm at any M
};

struct LinearOptions {
  LinearAlgo algo = LinearAlgo::kAuto;
};

// Largest M that takes the GEMV path under kAuto: where the GEMV still beats (panel) sgemm on an
// AVX2 machine (4 at the scalar SIMD level). Half-precision weights favour the GEMV longer (no
// panel conversion).
constexpr int64_t kLinearGemvMaxRowsF32 = 8;
constexpr int64_t kLinearGemvMaxRowsHalf = 16;
int64_t linear_gemv_max_rows(DType weight_dtype);

// Checks that `w` is a usable linear weight: rank-2 weight of a supported dtype, bias (N) or empty.
// `name` goes into the message ("model.layers.0.self_attn.q_proj: ...").
Status linear_check_weight(const LinearWeight& w, const std::string& name);

// in (M, K) f32 (any rank, last dim K), out (M, N) f32 (same leading dims, last dim N).
// out must not alias in.
Status linear(const TensorView& out, const TensorView& in, const LinearWeight& w,
              const LinearOptions& options = {});

}  // namespace vila::cpu
