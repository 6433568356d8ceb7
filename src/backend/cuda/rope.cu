#include <cmath>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/rope.h"

namespace vila::cuda {

namespace {

// ---- kernels ----
// One thread per (t, i).
__global__ void rope_cos_sin_kernel(float* __restrict__ cos_out, float* __restrict__ sin_out,
                                    const float* __restrict__ inv_freq, int64_t p0,
                                    int64_t t_count, int64_t half) {
  const int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (idx >= t_count * half) return;
  const int64_t t = idx / half, i = idx % half;
  const float freq = __fmul_rn(static_cast<float>(p0 + t), inv_freq[i]);
  cos_out[idx] = static_cast<float>(cos(static_cast<double>(freq)));
  sin_out[idx] = static_cast<float>(sin(static_cast<double>(freq)));
}

// One thread per (t, h, i), i < D/2: rotates the pair (i, i + D/2).
__global__ void rope_apply_kernel(float* __restrict__ x, const float* __restrict__ cos_t,
                                  const float* __restrict__ sin_t, int64_t t_count,
                                  int64_t n_head, int64_t half) {
  const int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (idx >= t_count * n_head * half) return;
  const int64_t i = idx % half;
  const int64_t th = idx / half;  // t * n_head + h
  const int64_t t = th / n_head;
  float* v = x + th * 2 * half;
  const float c = cos_t[t * half + i], s = sin_t[t * half + i];
  const float x1 = v[i], x2 = v[i + half];
  v[i] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
  v[i + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
}

}  // namespace

std::vector<float> rope_inv_freq(int64_t half, double theta) {
  std::vector<float> inv(static_cast<size_t>(half > 0 ? half : 0));
  const auto dim = static_cast<float>(2 * half);
  const auto base = static_cast<float>(theta);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / dim;
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(base, exponent);
  }
  return inv;
}

// ---- launchers ----
Status rope_cos_sin_f32(float* cos, float* sin, const float* inv_freq, int64_t p0, int64_t t_count,
                        int64_t half, void* stream) {
  if (t_count < 0 || half <= 0 || p0 < 0) {
    return {StatusCode::kInvalidArgument, "rope_cos_sin_f32: bad shape"};
  }
  if (t_count == 0) return {};
  constexpr int kThreads = 256;
  const int64_t items = t_count * half;
  rope_cos_sin_kernel<<<static_cast<unsigned>((items + kThreads - 1) / kThreads), kThreads, 0,
                        static_cast<cudaStream_t>(stream)>>>(cos, sin, inv_freq, p0, t_count,
                                                             half);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

Status rope_apply_f32(float* x, const float* cos, const float* sin, int64_t t_count,
                      int64_t n_head, int64_t head_dim, void* stream) {
  if (t_count < 0 || n_head <= 0 || head_dim <= 0 || head_dim % 2 != 0) {
    return {StatusCode::kInvalidArgument, "rope_apply_f32: bad shape (head_dim must be even)"};
  }
  if (t_count == 0) return {};
  constexpr int kThreads = 256;
  const int64_t half = head_dim / 2;
  const int64_t items = t_count * n_head * half;
  rope_apply_kernel<<<static_cast<unsigned>((items + kThreads - 1) / kThreads), kThreads, 0,
                      static_cast<cudaStream_t>(stream)>>>(x, cos, sin, t_count, n_head, half);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace vila::cuda
