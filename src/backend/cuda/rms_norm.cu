#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/rms_norm.h"

namespace vila::cuda {

// ---- kernels ----
// One block per row; a block-wide sum of squares through warp shuffles and shared memory.
template <int kThreads>
__global__ void rms_norm_f32_kernel(float* __restrict__ out, const float* __restrict__ x,
                                    const float* __restrict__ weight, int64_t cols, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float* outr = out + row * cols;
  float sum = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) sum += xr[c] * xr[c];
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  __shared__ float warp_sums[kThreads / 32];
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < kThreads / 32 ? warp_sums[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) warp_sums[0] = sum;
  }
  __syncthreads();
  const float inv_rms = rsqrtf(warp_sums[0] / static_cast<float>(cols) + eps);
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) outr[c] = xr[c] * inv_rms * weight[c];
}

// rms_norm_to: one block per row. Σ x² in double (as the CPU op; the fp32 result does not depend
// on the summation order), then y = round((x * inv_rms) * weight) with the operations of gemv.cu's
// kRmsNorm prologue, so prefill and decode feed the GEMMs identical values.
template <typename T, int kThreads>
__global__ void rms_norm_to_kernel(T* __restrict__ out, const float* __restrict__ x,
                                   const float* __restrict__ weight, int64_t cols, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;  // (cols) fp32
  T* outr = out + row * cols;        // (cols) compute dtype
  double sum = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    sum = fma(static_cast<double>(xr[c]), static_cast<double>(xr[c]), sum);
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  __shared__ double warp_sums[kThreads / 32];
  __shared__ float inv_rms_shared;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < kThreads / 32 ? warp_sums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) {
      const auto variance = static_cast<float>(sum / static_cast<double>(cols));
      inv_rms_shared = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(variance, eps)));
    }
  }
  __syncthreads();
  const float inv_rms = inv_rms_shared;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    outr[c] = from_float<T>(__fmul_rn(__fmul_rn(xr[c], inv_rms), weight[c]));
  }
}

// ---- launchers ----
Status rms_norm_f32(float* out, const float* x, const float* weight, int64_t rows, int64_t cols,
                    float eps, void* stream) {
  if (rows < 0 || cols <= 0) return {StatusCode::kInvalidArgument, "rms_norm_f32: bad shape"};
  if (rows == 0) return {};
  constexpr int kThreads = 256;
  rms_norm_f32_kernel<kThreads>
      <<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
          out, x, weight, cols, eps);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

Status rms_norm_to(void* out, DType dtype, const float* x, const float* weight, int64_t rows,
                   int64_t cols, float eps, void* stream) {
  if (rows < 0 || cols <= 0) {
    return invalid_argument("rms_norm_to: bad shape rows " + std::to_string(rows) + ", cols " +
                            std::to_string(cols));
  }
  if (rows == 0) return ok_status();
  if (out == nullptr || x == nullptr || weight == nullptr) {
    return invalid_argument("rms_norm_to: null pointer");
  }
  constexpr int kThreads = 256;
  VILA_DISPATCH_HALF(dtype, "rms_norm_to", {
    rms_norm_to_kernel<T, kThreads>
        <<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            static_cast<T*>(out), x, weight, cols, eps);
  });
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
