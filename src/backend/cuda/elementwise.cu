#include <cuda_bf16.h>

#include <cstdint>
#include <string>

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

__global__ void add_f32x4_kernel(float4* __restrict__ x, const float4* __restrict__ y, int64_t n4) {
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

template <typename O, typename I>
__global__ void convert_kernel(O* __restrict__ out, const I* __restrict__ x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    out[i] = from_float<O>(to_float(x[i]));
  }
}

// silu_mul_to: out (rows, f) = round(silu(g) * u) from gate_up (rows, 2f), the operations of
// silu_mul_one (and of gemv.cu's kSiluGate prologue). kVec consecutive columns per thread (8 with
// 16-byte accesses when f % 8 == 0 and the pointers are aligned, else 1).
template <typename T, int kVec>
__global__ void silu_mul_to_kernel(T* __restrict__ out, const T* __restrict__ gate_up, int64_t rows,
                                   int64_t f) {
  const int64_t groups_per_row = f / kVec;
  const int64_t groups = rows * groups_per_row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < groups;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / groups_per_row, j = (i % groups_per_row) * kVec;
    const T* g = gate_up + r * 2 * f + j;  // (kVec) gate
    const T* u = g + f;                    // (kVec) up
    T* o = out + r * f + j;
    if constexpr (kVec == 8) {
      const uint4 gv = *reinterpret_cast<const uint4*>(g);
      const uint4 uv = *reinterpret_cast<const uint4*>(u);
      const T* gh = reinterpret_cast<const T*>(&gv);
      const T* uh = reinterpret_cast<const T*>(&uv);
      uint4 ov;
      T* oh = reinterpret_cast<T*>(&ov);
#pragma unroll
      for (int q = 0; q < kVec; ++q)
        oh[q] = from_float<T>(silu_mul_one(to_float(gh[q]), to_float(uh[q])));
      *reinterpret_cast<uint4*>(o) = ov;
    } else {
      o[0] = from_float<T>(silu_mul_one(to_float(g[0]), to_float(u[0])));
    }
  }
}

}  // namespace

// ---- launchers ----
Status add_inplace_f32(float* x, const float* y, int64_t n, void* stream) {
  if (n < 0) return {StatusCode::kInvalidArgument, "add_inplace_f32: n < 0"};
  if (n == 0) return {};
  const auto s = static_cast<cudaStream_t>(stream);
  if (n % 4 == 0 && aligned16(x) && aligned16(y)) {
    add_f32x4_kernel<<<grid_for(n / 4), kThreads, 0, s>>>(
        reinterpret_cast<float4*>(x), reinterpret_cast<const float4*>(y), n / 4);
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

Status convert_dtype(void* out, DType out_dtype, const void* x, DType x_dtype, int64_t n,
                     void* stream) {
  if (n < 0) return invalid_argument("convert_dtype: n < 0");
  const bool to16 = x_dtype == DType::kF32 && out_dtype != DType::kF32;
  const bool from16 = out_dtype == DType::kF32 && x_dtype != DType::kF32;
  if (!to16 && !from16) {
    return unimplemented(std::string("convert_dtype: ") + dtype_name(x_dtype) + " to " +
                         dtype_name(out_dtype) + " (f32 <-> bf16 / f16)");
  }
  if (n == 0) return ok_status();
  if (out == nullptr || x == nullptr) return invalid_argument("convert_dtype: null pointer");
  const auto s = static_cast<cudaStream_t>(stream);
  VILA_DISPATCH_HALF(to16 ? out_dtype : x_dtype, "convert_dtype", {
    if (to16) {
      convert_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(out),
                                                      static_cast<const float*>(x), n);
    } else {
      convert_kernel<<<grid_for(n), kThreads, 0, s>>>(static_cast<float*>(out),
                                                      static_cast<const T*>(x), n);
    }
  });
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status silu_mul_to(void* out, const void* gate_up, int64_t rows, int64_t f, DType dtype,
                   void* stream) {
  if (rows < 0 || f <= 0) {
    return invalid_argument("silu_mul_to: bad shape rows " + std::to_string(rows) + ", F " +
                            std::to_string(f));
  }
  if (rows == 0) return ok_status();
  if (out == nullptr || gate_up == nullptr) return invalid_argument("silu_mul_to: null pointer");
  constexpr int kVec = 8;
  const auto s = static_cast<cudaStream_t>(stream);
  const bool vec = f % kVec == 0 && aligned16(out) && aligned16(gate_up);
  VILA_DISPATCH_HALF(dtype, "silu_mul_to", {
    if (vec) {
      silu_mul_to_kernel<T, kVec><<<grid_for(rows * (f / kVec)), kThreads, 0, s>>>(
          static_cast<T*>(out), static_cast<const T*>(gate_up), rows, f);
    } else {
      silu_mul_to_kernel<T, 1><<<grid_for(rows * f), kThreads, 0, s>>>(
          static_cast<T*>(out), static_cast<const T*>(gate_up), rows, f);
    }
  });
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
