#include <cmath>
#include <string>

#include "backend/cuda/attention.h"
#include "backend/cuda/cuda_common.cuh"

namespace vila::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = static_cast<int>(kAttentionMaxHeadDim / 32);  // head dims per lane

// ---- kernels ----
// Block (h, t); warp w takes keys w, w + kWarps, ...; lane l holds head dims l, l + 32, ...
__global__ void __launch_bounds__(kWarps * 32)
    attention_causal_f32_kernel(float* __restrict__ out, const float* __restrict__ q,
                                const float* __restrict__ k, const float* __restrict__ v,
                                int64_t p0, int n_head, int n_head_kv, int d, float scale) {
  const int h = blockIdx.x;
  const int t = blockIdx.y;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int h_kv = h / (n_head / n_head_kv);
  const int64_t n_keys = p0 + t + 1;
  const int64_t kv_stride = static_cast<int64_t>(n_head_kv) * d;
  const float* q_row = q + (static_cast<int64_t>(t) * n_head + h) * d;
  const float* k_head = k + static_cast<int64_t>(h_kv) * d;
  const float* v_head = v + static_cast<int64_t>(h_kv) * d;

  float qr[kPerLane], acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int dd = lane + 32 * i;
    qr[i] = dd < d ? q_row[dd] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY;  // running max of this warp's scores
  float l = 0.0f;       // running sum of exp(score - m)
  for (int64_t j = warp; j < n_keys; j += kWarps) {
    const float* k_row = k_head + j * kv_stride;
    const float* v_row = v_head + j * kv_stride;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int dd = lane + 32 * i;
      if (dd < d) s += qr[i] * k_row[dd];
    }
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
    s *= scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);
    const float p = expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int dd = lane + 32 * i;
      if (dd < d) acc[i] = acc[i] * corr + p * v_row[dd];
    }
    m = m_new;
  }

  __shared__ float warp_m[kWarps], warp_l[kWarps];
  __shared__ float warp_acc[kWarps][kAttentionMaxHeadDim];
  if (lane == 0) {
    warp_m[warp] = m;
    warp_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int dd = lane + 32 * i;
    if (dd < d) warp_acc[warp][dd] = acc[i];
  }
  __syncthreads();
  float m_all = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, warp_m[w]);  // finite: key 0 exists
  float l_all = 0.0f;
  for (int w = 0; w < kWarps; ++w) l_all += warp_l[w] * expf(warp_m[w] - m_all);
  const float inv_l = 1.0f / l_all;
  float* o_row = out + (static_cast<int64_t>(t) * n_head + h) * d;
  for (int dd = threadIdx.x; dd < d; dd += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w) o += warp_acc[w][dd] * expf(warp_m[w] - m_all);
    o_row[dd] = o * inv_l;
  }
}

}  // namespace

// ---- launchers ----
Status attention_causal_f32(float* out, const float* q, const float* k, const float* v, int64_t p0,
                            int64_t t_count, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                            int64_t cache_len, float scale, void* stream) {
  if (t_count < 0 || n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv != 0 || head_dim <= 0 ||
      head_dim > kAttentionMaxHeadDim || t_count > 65535 || n_head > 65535) {
    return {StatusCode::kInvalidArgument,
            "attention_causal_f32: need H % Hkv == 0, 0 < D <= 256, T <= 65535; got T " +
                std::to_string(t_count) + ", H " + std::to_string(n_head) + ", Hkv " +
                std::to_string(n_head_kv) + ", D " + std::to_string(head_dim)};
  }
  if (p0 < 0 || p0 + t_count > cache_len) {
    return {StatusCode::kOutOfRange, "attention_causal_f32: positions [" + std::to_string(p0) +
                                         ", " + std::to_string(p0 + t_count) +
                                         ") exceed the cache of " + std::to_string(cache_len)};
  }
  if (t_count == 0) return {};
  const dim3 grid(static_cast<unsigned>(n_head), static_cast<unsigned>(t_count));
  attention_causal_f32_kernel<<<grid, kWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(
      out, q, k, v, p0, static_cast<int>(n_head), static_cast<int>(n_head_kv),
      static_cast<int>(head_dim), scale);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace vila::cuda
