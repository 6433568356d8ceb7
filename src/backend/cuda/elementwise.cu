#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/elementwise.h"

namespace vila::cuda {

namespace {

constexpr int kThreads = 256;

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

unsigned grid_for(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);  // grid-stride past it
}

// silu(g) * u with each operation rounded as the CPU does (no contraction into an FMA).
__device__ __forceinline__ float silu_mul_one(float g, float u) {
  return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

// ---- kernels ----
__global__ void add_f32_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] += y[i];
  }
}

__global__ void add_f32x4_kernel(float4* __restrict__ x, const float4* __restrict__ y,
                                 int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n4;
       i += int64_t{gridDim.x} * blockDim.x) {
    float4 a = x[i];
    const float4 b = y[i];
    a.x += b.x;
    a.y += b.y;
    a.z += b.z;
    a.w += b.w;
    x[i] = a;
  }
}

__global__ void silu_mul_f32_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = silu_mul_one(gate[i], up[i]);
  }
}

__global__ void silu_mul_f32x4_kernel(float4* out, const float4* gate, const float4* up,
                                      int64_t n4) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n4;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float4 g = gate[i];
    const float4 u = up[i];
    out[i] = make_float4(silu_mul_one(g.x, u.x), silu_mul_one(g.y, u.y), silu_mul_one(g.z, u.z),
                         silu_mul_one(g.w, u.w));
  }
}

__global__ void f32_to_bf16_kernel(__nv_bfloat16* __restrict__ out, const float* __restrict__ x,
                                   int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = __float2bfloat16_rn(x[i]);
  }
}

}  // namespace

// ---- launchers ----
Status add_inplace_f32(float* x, const float* y, int64_t n, void* stream) {
  if (n < 0) return {StatusCode::kInvalidArgument, "add_inplace_f32: n < 0"};
  if (n == 0) return {};
  const auto s = static_cast<cudaStream_t>(stream);
  if (n % 4 == 0 && aligned16(x) && aligned16(y)) {
    add_f32x4_kernel<<<grid_for(n / 4), kThreads, 0, s>>>(reinterpret_cast<float4*>(x),
                                                          reinterpret_cast<const float4*>(y), n / 4);
  } else {
    add_f32_kernel<<<grid_for(n), kThreads, 0, s>>>(x, y, n);
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

Status silu_mul_f32(float* out, const float* gate, const float* up, int64_t n, void* stream) {
  if (n < 0) return {StatusCode::kInvalidArgument, "silu_mul_f32: n < 0"};
  if (n == 0) return {};
  const auto s = static_cast<cudaStream_t>(stream);
  if (n % 4 == 0 && aligned16(out) && aligned16(gate) && aligned16(up)) {
    silu_mul_f32x4_kernel<<<grid_for(n / 4), kThreads, 0, s>>>(
        reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(gate),
        reinterpret_cast<const float4*>(up), n / 4);
  } else {
    silu_mul_f32_kernel<<<grid_for(n), kThreads, 0, s>>>(out, gate, up, n);
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

Status f32_to_bf16(uint16_t* out, const float* x, int64_t n, void* stream) {
  if (n < 0) return {StatusCode::kInvalidArgument, "f32_to_bf16: n < 0"};
  if (n == 0) return {};
  f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<__nv_bfloat16*>(out), x, n);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace vila::cuda
