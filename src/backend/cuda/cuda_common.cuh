// Shared CUDA helpers: one checking macro that turns CUDA errors into Status values (library code
// never exits), ceil_div, and device queries.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

inline Status cuda_status(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return {};
  return {StatusCode::kInternal, std::string(file) + ":" + std::to_string(line) + ": " + expr +
                                     ": " + cudaGetErrorString(err)};
}

// ceil(a / b) for positive integers, in their common type (int for ints, int64_t if either is).
template <typename A, typename B>
constexpr auto ceil_div(A a, B b) {
  return (a + b - 1) / b;
}

}  // namespace vila::cuda

#define VILA_CUDA_CHECK(expr) \
  VILA_RETURN_IF_ERROR(::vila::cuda::cuda_status((expr), #expr, __FILE__, __LINE__))

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace vila::cuda {

// Element conversions for kernels templated on the 16-bit compute type (__nv_bfloat16 or __half):
// to_float widens exactly; from_float rounds to nearest even.
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

}  // namespace vila::cuda

// Dispatches a 16-bit compute DType (kBF16 / kF16) to a type alias T inside the body; returns
// Unimplemented for anything else. Usage: VILA_DISPATCH_HALF(dtype, "op", { launch<T>(...); });
#define VILA_DISPATCH_HALF(dtype, what, ...)                                                   \
  do {                                                                                         \
    if ((dtype) == ::vila::DType::kBF16) {                                                     \
      using T = __nv_bfloat16;                                                                 \
      __VA_ARGS__                                                                              \
    } else if ((dtype) == ::vila::DType::kF16) {                                               \
      using T = __half;                                                                        \
      __VA_ARGS__                                                                              \
    } else {                                                                                   \
      return ::vila::Status{::vila::StatusCode::kUnimplemented,                                \
                            std::string(what) + ": compute dtype must be bf16 or f16"};        \
    }                                                                                          \
  } while (0)
