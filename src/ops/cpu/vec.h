// Inner loops shared by the CPU ops (dot products, axpy, row conversion, the half-precision GEMV
// micro-kernel), each with a plain scalar version and an AVX2+FMA+F16C version picked at run time.
//
// The library is built without -march=native by default, so the SIMD versions are compiled with a
// per-function target attribute and chosen once from cpuid. The scalar versions are the readable
// definition; tests run both and compare.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace vila::cpu {

enum class SimdLevel { kScalar, kAvx2 };

// The level in use: the best the CPU supports unless overridden.
SimdLevel simd_level();
const char* simd_level_name(SimdLevel level);
// Forces a level (tests use it to cover both paths). A level the CPU lacks falls back to scalar.
void simd_set_level(SimdLevel level);
// Best level this CPU supports.
SimdLevel simd_detect();

// sum_i a[i] * b[i] (fp32 accumulate, order differs between levels).
float vec_dot_f32(const float* a, const float* b, int64_t n);
// y[i] += alpha * x[i]
void vec_axpy_f32(float* y, float alpha, const float* x, int64_t n);
// y[i] *= alpha
void vec_scale_f32(float* y, float alpha, int64_t n);
// dst[i] = float(src[i]) for src of dtype f32, bf16 or f16 (other dtypes: caller's bug).
void vec_to_f32(DType src_dtype, const void* src, float* dst, int64_t n);

// GEMV micro-kernel over weight rows [n_begin, n_end) of a (N, K) matrix of dtype f32/bf16/f16:
//   out[m * out_stride + n] = sum_k in[m * in_stride + k] * w[n, k]      for m < n_in (<= 4)
// Each weight row is read once and converted on the fly (no fp32 copy of the weights).
constexpr int kGemvMaxInputs = 4;
void vec_gemv_rows(DType w_dtype, const void* w, int64_t k, int64_t n_begin, int64_t n_end,
                   const float* in, int64_t in_stride, int n_in, float* out, int64_t out_stride);

}  // namespace vila::cpu
