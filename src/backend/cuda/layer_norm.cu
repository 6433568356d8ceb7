// LayerNorm kernels (see layer_norm.h).
//  - Rows of up to kWarpMaxCols columns (a multiple of 4, 16-byte aligned): one warp per row, the
//    row held in registers as float4s (read from memory once), sums by warp shuffles; the
//    SigLIP rows (1152). 4-value stores (16 bytes fp32, 8 bytes 16-bit).
//  - Otherwise: one block per row, block-wide sums through warp shuffles and shared memory. The
//    row is read three times (sum, squared deviations, output); the second and third reads hit
//    L1/L2, so DRAM sees one read of x and one write of out.
#include <cstdint>
#include <string>
#include <type_traits>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/layer_norm.h"

namespace vila::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int64_t kMaxGridX = 0x7fffffff;  // one block per row
constexpr int kVec = 4;                    // floats per register vector (float4)
constexpr int kWarpMaxVecs = 16;           // float4s per lane in the warp-per-row kernel
constexpr int64_t kWarpMaxCols = int64_t{kWarp} * kVec * kWarpMaxVecs;  // 2048
constexpr int kRowsPerBlock = 4;  // warp-per-row kernel: warps (rows) per block

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(kFullMask, value, offset);
  }
  return value;
}

// Four consecutive values of out (16-byte fp32 or 8-byte 16-bit store; the launcher checks the
// alignment).
__device__ __forceinline__ void store4(float* out, float a, float b, float c, float d) {
  *reinterpret_cast<float4*>(out) = make_float4(a, b, c, d);
}
template <typename T>
__device__ __forceinline__ void store4(T* out, float a, float b, float c, float d) {
  __align__(8) T h[kVec] = {from_float<T>(a), from_float<T>(b), from_float<T>(c), from_float<T>(d)};
  *reinterpret_cast<uint2*>(out) = *reinterpret_cast<const uint2*>(h);
}

// Sum of `value` over the block; every thread gets the total. `scratch` holds kThreads / 32
// floats; the trailing __syncthreads lets the caller reuse it.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(kFullMask, value, offset);
  }
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < kThreads / kWarp ? scratch[lane] : 0.0f;
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(kFullMask, value, offset);
  }
  __syncthreads();
  return value;
}

// Four consecutive values of x as floats (a 16-byte fp32 or 8-byte 16-bit load; the launcher
// checks the alignment).
__device__ __forceinline__ float4 load4(const float* x) {
  return *reinterpret_cast<const float4*>(x);
}
template <typename X>
__device__ __forceinline__ float4 load4(const X* x) {
  const uint2 raw = *reinterpret_cast<const uint2*>(x);
  const X* h = reinterpret_cast<const X*>(&raw);
  return make_float4(to_float(h[0]), to_float(h[1]), to_float(h[2]), to_float(h[3]));
}

// ---- kernels ----

// x (rows, cols) X -> out (rows, cols) T; blockIdx.x = row.
template <typename T, typename X>
__global__ void layer_norm_kernel(T* out, int64_t out_stride, const X* x,
                                  const float* __restrict__ weight, const float* __restrict__ bias,
                                  int64_t cols, float eps) {
  __shared__ float scratch[kThreads / kWarp];
  const int64_t row = blockIdx.x;
  const X* xr = x + row * cols;
  T* outr = out + row * out_stride;
  const float inv_cols = 1.0f / static_cast<float>(cols);

  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) sum += to_float(xr[c]);
  const float mean = block_sum(sum, scratch) * inv_cols;

  float sum_sq = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    const float d = to_float(xr[c]) - mean;
    sum_sq += d * d;
  }
  const float variance = block_sum(sum_sq, scratch) * inv_cols;
  const float inv_std = 1.0f / sqrtf(variance + eps);

  // Each thread reads x[c] before it writes out[c]: in place (out == x, fp32) is safe.
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    const float y = (to_float(xr[c]) - mean) * inv_std * weight[c];
    outr[c] = from_float<T>(bias != nullptr ? y + bias[c] : y);
  }
}

// x (rows, cols) X -> out (rows, cols) T; warp w of block b handles row b * kRowsPerBlock + w.
// cols % 4 == 0, cols <= kWarpMaxCols; lane l holds 4-value groups l, l + 32, ... of the row.
template <typename T, typename X>
__global__ void layer_norm_warp_kernel(T* out, int64_t out_stride, const X* x,
                                       const float* __restrict__ weight,
                                       const float* __restrict__ bias, int64_t rows, int cols,
                                       float eps) {
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  if (row >= rows) return;
  const X* xr = x + row * cols;
  const int vecs = cols / kVec;
  float4 v[kWarpMaxVecs];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kWarpMaxVecs; ++i) {
    const int at = i * kWarp + lane;
    v[i] = at < vecs ? load4(xr + at * kVec) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    sum += (v[i].x + v[i].y) + (v[i].z + v[i].w);
  }
  const float inv_cols = 1.0f / static_cast<float>(cols);
  const float mean = warp_sum(sum) * inv_cols;
  float sum_sq = 0.0f;
#pragma unroll
  for (int i = 0; i < kWarpMaxVecs; ++i) {
    if (i * kWarp + lane < vecs) {
      const float a = v[i].x - mean, b = v[i].y - mean, c = v[i].z - mean, d = v[i].w - mean;
      sum_sq += (a * a + b * b) + (c * c + d * d);
    }
  }
  const float inv_std = 1.0f / sqrtf(warp_sum(sum_sq) * inv_cols + eps);
  T* outr = out + row * out_stride;
  const float4* w4 = reinterpret_cast<const float4*>(weight);
  const float4* b4 = reinterpret_cast<const float4*>(bias);
#pragma unroll
  for (int i = 0; i < kWarpMaxVecs; ++i) {
    const int at = i * kWarp + lane;
    if (at >= vecs) continue;
    const float4 w = w4[at];
    const float4 b = bias != nullptr ? b4[at] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    store4(outr + at * kVec, (v[i].x - mean) * inv_std * w.x + b.x,
           (v[i].y - mean) * inv_std * w.y + b.y, (v[i].z - mean) * inv_std * w.z + b.z,
           (v[i].w - mean) * inv_std * w.w + b.w);
  }
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

// ---- launchers ----

Status layer_norm(void* out, DType out_dtype, int64_t out_row_stride, const void* x, DType x_dtype,
                  const float* weight, const float* bias, int64_t rows, int64_t cols, float eps,
                  void* stream) {
  const int64_t stride = out_row_stride == 0 ? cols : out_row_stride;
  if (rows < 0 || cols <= 0 || stride < cols) {
    return invalid_argument("layer_norm: bad shape rows " + std::to_string(rows) + ", cols " +
                            std::to_string(cols) + ", out_row_stride " +
                            std::to_string(out_row_stride));
  }
  if (rows > kMaxGridX) {
    return invalid_argument("layer_norm: " + std::to_string(rows) + " rows exceed the grid limit");
  }
  if (x_dtype != DType::kF32 && (x_dtype != out_dtype || out_dtype == DType::kF32)) {
    return unimplemented(std::string("layer_norm: ") + dtype_name(x_dtype) + " x with " +
                         dtype_name(out_dtype) + " out (x is f32 or of the 16-bit out dtype)");
  }
  if (rows == 0) return ok_status();
  if (out == nullptr || x == nullptr || weight == nullptr) {
    return invalid_argument("layer_norm: null out, x or weight");
  }
  if ((out_dtype != DType::kF32 || stride != cols) && out == x) {
    return invalid_argument("layer_norm: a 16-bit or strided out must not alias x");
  }
  const auto s = static_cast<cudaStream_t>(stream);
  const int64_t es = out_dtype == DType::kF32 ? 4 : 2;
  const int64_t xs = x_dtype == DType::kF32 ? 4 : 2;
  const bool warp_path = cols % kVec == 0 && cols <= kWarpMaxCols && stride % kVec == 0 &&
                         aligned(x, kVec * xs) && aligned(weight, 16) &&
                         (bias == nullptr || aligned(bias, 16)) && aligned(out, kVec * es);
  // One of the two kernels for out of type T and x of type X.
  const auto launch = [&](auto* typed_out, const auto* typed_x) {
    using T = std::remove_pointer_t<decltype(typed_out)>;
    using X = std::remove_const_t<std::remove_pointer_t<decltype(typed_x)>>;
    if (warp_path) {
      const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
      layer_norm_warp_kernel<T, X><<<blocks, kRowsPerBlock * kWarp, 0, s>>>(
          typed_out, stride, typed_x, weight, bias, rows, static_cast<int>(cols), eps);
    } else {
      layer_norm_kernel<T, X><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
          typed_out, stride, typed_x, weight, bias, cols, eps);
    }
  };
  if (out_dtype == DType::kF32) {
    launch(static_cast<float*>(out), static_cast<const float*>(x));
  } else {
    VILA_DISPATCH_HALF(out_dtype, "layer_norm", {
      if (x_dtype == DType::kF32) {
        launch(static_cast<T*>(out), static_cast<const float*>(x));
      } else {
        launch(static_cast<T*>(out), static_cast<const T*>(x));
      }
    });
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
