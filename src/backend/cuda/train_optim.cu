// Cross entropy, global grad norm and fused AdamW for the CUDA training step (train_optim.h).
#include <algorithm>
#include <cmath>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/partials.h"
#include "backend/cuda/train_optim.h"

namespace vila::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int64_t kMaxBlocks = 65535 * 16;
constexpr double kClipEps = 1e-6;           // torch.nn.utils.clip_grad_norm_
constexpr unsigned kSumsqMaxBlocks = 4096;  // per-block partials of the sum of squares

__device__ float warp_reduce_sum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One block per row: max, Σ exp (fp32), then the bf16 gradient. Z is float or bf16; with bf16
// logits dz may be z itself (each element is read before the same thread overwrites it, and the
// label's logit is read before the barrier that precedes the writes).
template <typename Z>
__global__ void cross_entropy_kernel(bf16* dz, float* __restrict__ row_loss, const Z* z,
                                     const int32_t* __restrict__ y, int64_t vocab, float scale) {
  __shared__ float red[kWarp];
  const int64_t row = blockIdx.x;
  const Z* zr = z + row * vocab;
  bf16* dr = dz + row * vocab;
  const int32_t label = y[row];
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
  if (label == kTrainIgnoreIndex) {
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) dr[j] = __float2bfloat16_rn(0.0f);
    if (threadIdx.x == 0) row_loss[row] = 0.0f;
    return;
  }
  const float z_label = to_float(zr[label]);
  // One pass for the max and the sum of exponentials (online: the sum is rescaled when the max
  // grows), then the pairs (max, sum) merged across the warp and the block.
  float mx = -INFINITY, sum = 0.0f;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float x = to_float(zr[j]);
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
  if (threadIdx.x == 0) row_loss[row] = lse - z_label;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) {
    const float p = __expf(to_float(zr[j]) - mx) * inv;
    dr[j] = __float2bfloat16_rn(scale * (p - (j == label ? 1.0f : 0.0f)));
  }
}

// Each block's Σ g² (double) to partials[blockIdx.x]; sumsq_finish_kernel adds them in a fixed
// order (no atomics: the norm, and so the clipping, is bitwise reproducible).
__global__ void sumsq_kernel(double* __restrict__ partials, const float* __restrict__ g,
                             int64_t n) {
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
    partials[blockIdx.x] = t;
  }
}

// One block: *out += Σ partials (n), thread t summing t, t + blockDim.x, ... then a fixed tree.
__global__ void sumsq_finish_kernel(double* __restrict__ out, const double* __restrict__ partials,
                                    int n) {
  __shared__ double red[kThreads];
  double s = 0.0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
  red[threadIdx.x] = s;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) red[threadIdx.x] += red[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out += red[0];
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

// One element of PyTorch's AdamW (train/optimizer.h's order); decay: i < n_decay.
__device__ __forceinline__ void adamw_element(float& p, float& m, float& v, float g, bool decay,
                                              const AdamScalars& s) {
  if (decay) p = p * s.decay_mul;
  m = fmaf(s.one_minus_b1, g - m, m);
  v = v * s.b2 + (s.one_minus_b2 * g) * g;
  const float denom = sqrtf(v) / s.bc2_sqrt + s.eps;
  p = p + (s.neg_step * m) / denom;
}

// Groups of 4 values (16-byte loads, one 8-byte bf16 store) over [0, n / 4 · 4), the tail of
// n % 4 values by thread 0.. of the first block. p, g, m, v, p16 16- / 8-byte aligned (base
// pointers from cudaMalloc).
__global__ void adamw_kernel(float* __restrict__ p, bf16* __restrict__ p16,
                             const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, int64_t n_decay, AdamScalars s,
                             const double* __restrict__ sumsq) {
  float clip = 1.0f;
  if (s.max_norm > 0.0) {
    const double scale = s.max_norm / (sqrt(*sumsq) + kClipEps);
    if (scale < 1.0) clip = static_cast<float>(scale);
  }
  const int64_t groups = n / 4;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < groups;
       q += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float4 gq = reinterpret_cast<const float4*>(g)[q];
    float4 pq = reinterpret_cast<float4*>(p)[q];
    float4 mq = reinterpret_cast<float4*>(m)[q];
    float4 vq = reinterpret_cast<float4*>(v)[q];
    if (clip < 1.0f) gq = make_float4(gq.x * clip, gq.y * clip, gq.z * clip, gq.w * clip);
    const int64_t i = 4 * q;
    adamw_element(pq.x, mq.x, vq.x, gq.x, i < n_decay, s);
    adamw_element(pq.y, mq.y, vq.y, gq.y, i + 1 < n_decay, s);
    adamw_element(pq.z, mq.z, vq.z, gq.z, i + 2 < n_decay, s);
    adamw_element(pq.w, mq.w, vq.w, gq.w, i + 3 < n_decay, s);
    reinterpret_cast<float4*>(p)[q] = pq;
    reinterpret_cast<float4*>(m)[q] = mq;
    reinterpret_cast<float4*>(v)[q] = vq;
    __nv_bfloat162 lo = __floats2bfloat162_rn(pq.x, pq.y), hi = __floats2bfloat162_rn(pq.z, pq.w);
    uint2 packed;
    packed.x = *reinterpret_cast<uint32_t*>(&lo);
    packed.y = *reinterpret_cast<uint32_t*>(&hi);
    reinterpret_cast<uint2*>(p16)[q] = packed;
  }
  if (blockIdx.x == 0 && threadIdx.x < n - 4 * groups) {
    const int64_t i = 4 * groups + threadIdx.x;
    const float gi = clip < 1.0f ? g[i] * clip : g[i];
    float pi = p[i], mi = m[i], vi = v[i];
    adamw_element(pi, mi, vi, gi, i < n_decay, s);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    p16[i] = __float2bfloat16_rn(pi);
  }
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(
      std::min<int64_t>(std::max<int64_t>(ceil_div(n, int64_t{kThreads}), 1), kMaxBlocks));
}

}  // namespace

Status train_cross_entropy(void* dlogits, float* row_loss, const void* logits, DType logits_dtype,
                           const int32_t* labels, int64_t rows, int64_t vocab, float scale,
                           void* stream) {
  if (rows <= 0 || vocab <= 0 || rows > (int64_t{1} << 31)) {
    return invalid_argument("train_cross_entropy: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(vocab));
  }
  if (dlogits == logits && logits_dtype != DType::kBF16) {
    return invalid_argument("train_cross_entropy: only bf16 logits may share dlogits' memory");
  }
  const auto cs = static_cast<cudaStream_t>(stream);
  const auto blocks = static_cast<unsigned>(rows);
  auto* dz = static_cast<bf16*>(dlogits);
  if (logits_dtype == DType::kF32) {
    cross_entropy_kernel<float><<<blocks, kThreads, 0, cs>>>(
        dz, row_loss, static_cast<const float*>(logits), labels, vocab, scale);
  } else if (logits_dtype == DType::kBF16) {
    cross_entropy_kernel<bf16><<<blocks, kThreads, 0, cs>>>(
        dz, row_loss, static_cast<const bf16*>(logits), labels, vocab, scale);
  } else {
    return unimplemented("train_cross_entropy: logits dtype " +
                         std::string(dtype_name(logits_dtype)) + " (f32 or bf16)");
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_grad_sumsq(double* sumsq, const float* g, int64_t n, void* stream) {
  if (n <= 0) return invalid_argument("train_grad_sumsq: bad count " + std::to_string(n));
  const unsigned blocks = std::min<unsigned>(blocks_for(n), kSumsqMaxBlocks);
  VILA_ASSIGN_OR_RETURN(void* ws, partials_workspace(blocks * sizeof(double)));
  auto* partials = static_cast<double*>(ws);
  const auto cs = static_cast<cudaStream_t>(stream);
  sumsq_kernel<<<blocks, kThreads, 0, cs>>>(partials, g, n);
  VILA_CUDA_CHECK(cudaGetLastError());
  sumsq_finish_kernel<<<1, kThreads, 0, cs>>>(sumsq, partials, static_cast<int>(blocks));
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
  const auto vec_aligned = [](const void* ptr, uintptr_t bytes) {
    return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
  };
  if (!vec_aligned(p, 16) || !vec_aligned(g, 16) || !vec_aligned(m, 16) || !vec_aligned(v, 16) ||
      !vec_aligned(p16, 8)) {
    return invalid_argument("train_adamw: p, g, m, v must be 16-byte and p16 8-byte aligned");
  }
  if (st.weight_decay == 0.0) n_decay = 0;
  adamw_kernel<<<blocks_for(ceil_div(n, int64_t{4})), kThreads, 0,
                 static_cast<cudaStream_t>(stream)>>>(p, static_cast<bf16*>(p16), g, m, v, n,
                                                      n_decay, s, st.sumsq);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
