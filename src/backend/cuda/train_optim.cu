// Cross entropy, global grad norm and fused AdamW for the CUDA training step (train_optim.h).
#include <algorithm>
#include <cmath>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/train_optim.h"

namespace vila::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int64_t kMaxBlocks = 65535 * 16;
constexpr double kClipEps = 1e-6;  // torch.nn.utils.clip_grad_norm_

__device__ float warp_reduce_sum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One block per row: max, Σ exp (fp32), then the bf16 gradient.
__global__ void cross_entropy_kernel(bf16* __restrict__ dz, float* __restrict__ row_loss,
                                     const float* __restrict__ z, const int32_t* __restrict__ y,
                                     int64_t vocab, float scale) {
  __shared__ float red[kWarp];
  const int64_t row = blockIdx.x;
  const float* zr = z + row * vocab;
  bf16* dr = dz + row * vocab;
  const int32_t label = y[row];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
  if (label == kTrainIgnoreIndex) {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) dr[j] = __float2bfloat16_rn(0.0f);
    if (threadIdx.x == 0) row_loss[row] = 0.0f;
    return;
  }
  // One pass for the max and the sum of exponentials (online: the sum is rescaled when the max
  // grows), then the pairs (max, sum) merged across the warp and the block.
  float mx = -INFINITY, sum = 0.0f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float x = zr[j];
    if (x > mx) {
      sum = sum * __expf(mx - x) + 1.0f;
      mx = x;
    } else {
      sum += __expf(x - mx);
    }
  }
  auto merge = [](float& m, float& s, float m2, float s2) {
    const float n = fmaxf(m, m2);
    s = (m == -INFINITY ? 0.0f : s * __expf(m - n)) +
        (m2 == -INFINITY ? 0.0f : s2 * __expf(m2 - n));
    m = n;
  };
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, mx, o), s2 = __shfl_xor_sync(0xffffffffu, sum, o);
    merge(mx, sum, m2, s2);
  }
  __shared__ float red_sum[kWarp];
  if (lane == 0) {
    red[warp] = mx;
    red_sum[warp] = sum;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float m = red[0], t = red_sum[0];
    for (int w = 1; w < warps; ++w) merge(m, t, red[w], red_sum[w]);
    red[0] = m;
    red_sum[0] = t;
  }
  __syncthreads();
  mx = red[0];
  sum = red_sum[0];
  const float lse = mx + logf(sum), inv = 1.0f / sum;
  if (threadIdx.x == 0) row_loss[row] = lse - zr[label];
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float p = __expf(zr[j] - mx) * inv;
    dr[j] = __float2bfloat16_rn(scale * (p - (j == label ? 1.0f : 0.0f)));
  }
}

__global__ void sumsq_kernel(double* __restrict__ out, const float* __restrict__ g, int64_t n) {
  __shared__ float red[kWarp];
  float s = 0.0f;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    s += g[i] * g[i];
  }
  s = warp_reduce_sum(s);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  if (lane == 0) red[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < static_cast<int>(blockDim.x) / kWarp; ++w) t += red[w];
    atomicAdd(out, t);
  }
}

struct AdamScalars {
  float decay_mul;     // float(1 - lr wd)
  float one_minus_b1;  // float(1 - b1)
  float b2;            // float(b2)
  float one_minus_b2;  // float(1 - b2)
  float bc2_sqrt;      // float(sqrt(1 - b2^t))
  float eps;           // float(eps)
  float neg_step;      // float(-lr / (1 - b1^t))
  double max_norm;
};

__global__ void adamw_kernel(float* __restrict__ p, bf16* __restrict__ p16,
                             const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, int64_t n_decay, AdamScalars s,
                             const double* __restrict__ sumsq) {
  float clip = 1.0f;
  if (s.max_norm > 0.0) {
    const double scale = s.max_norm / (sqrt(*sumsq) + kClipEps);
    if (scale < 1.0) clip = static_cast<float>(scale);
  }
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float gi = clip < 1.0f ? g[i] * clip : g[i];
    float pi = p[i];
    if (i < n_decay) pi = pi * s.decay_mul;
    const float mi = fmaf(s.one_minus_b1, gi - m[i], m[i]);
    const float vi = v[i] * s.b2 + (s.one_minus_b2 * gi) * gi;
    const float denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
    pi = pi + (s.neg_step * mi) / denom;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    p16[i] = __float2bfloat16_rn(pi);
  }
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(
      std::min<int64_t>(std::max<int64_t>(ceil_div(n, int64_t{kThreads}), 1), kMaxBlocks));
}

}  // namespace

Status train_cross_entropy(void* dlogits, float* row_loss, const float* logits,
                           const int32_t* labels, int64_t rows, int64_t vocab, float scale,
                           void* stream) {
  if (rows <= 0 || vocab <= 0 || rows > (int64_t{1} << 31)) {
    return invalid_argument("train_cross_entropy: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(vocab));
  }
  cross_entropy_kernel<<<static_cast<unsigned>(rows), kThreads, 0,
                         static_cast<cudaStream_t>(stream)>>>(static_cast<bf16*>(dlogits), row_loss,
                                                              logits, labels, vocab, scale);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_grad_sumsq(double* sumsq, const float* g, int64_t n, void* stream) {
  if (n <= 0) return invalid_argument("train_grad_sumsq: bad count " + std::to_string(n));
  sumsq_kernel<<<std::min<unsigned>(blocks_for(n), 4096), kThreads, 0,
                 static_cast<cudaStream_t>(stream)>>>(sumsq, g, n);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_adamw(float* p, void* p16, const float* g, float* m, float* v, int64_t n,
                   int64_t n_decay, const AdamWStep& st, void* stream) {
  if (n <= 0 || n_decay < 0 || n_decay > n || st.step < 1) {
    return invalid_argument("train_adamw: bad count " + std::to_string(n) + " / decay " +
                            std::to_string(n_decay) + " / step " + std::to_string(st.step));
  }
  if (st.max_norm > 0.0 && st.sumsq == nullptr) {
    return invalid_argument("train_adamw: clipping needs the device sum of squares");
  }
  const double t = static_cast<double>(st.step);
  AdamScalars s{};
  s.decay_mul = static_cast<float>(1.0 - st.lr * st.weight_decay);
  s.one_minus_b1 = static_cast<float>(1.0 - st.beta1);
  s.b2 = static_cast<float>(st.beta2);
  s.one_minus_b2 = static_cast<float>(1.0 - st.beta2);
  s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(st.beta2, t)));
  s.eps = static_cast<float>(st.eps);
  s.neg_step = static_cast<float>(-st.lr / (1.0 - std::pow(st.beta1, t)));
  s.max_norm = st.max_norm;
  if (st.weight_decay == 0.0) n_decay = 0;
  adamw_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      p, static_cast<bf16*>(p16), g, m, v, n, n_decay, s, st.sumsq);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
