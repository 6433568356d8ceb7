// Kernels of the Qwen2 training step (train_ops.h): RMSNorm, RoPE + q/k/v split, SwiGLU, causal
// softmax and its backward, embedding, conversions. bf16 activations, fp32 math.
#include <algorithm>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/train_ops.h"

namespace vila::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int kNormRowsPerBlock = 4;    // rows per block of the RMSNorm backward (dw partial sums)
constexpr int64_t kMaxNormCols = 8192;  // dw partials live in shared memory
constexpr int kMaxGridX = 65535;

// Sum of v over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it.
__device__ float block_sum(float v, float* shared) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  v = lane < warps ? shared[lane] : 0.0f;
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ float block_max(float v, float* shared) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  v = lane < warps ? shared[lane] : -INFINITY;
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// One block per row.
__global__ void rms_forward_kernel(bf16* __restrict__ y, float* __restrict__ rstd,
                                   const float* __restrict__ x, const float* __restrict__ w,
                                   int64_t cols, float eps) {
  __shared__ float red[kWarp];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float ss = 0.0f;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, red);
  const float r = rsqrtf(ss / static_cast<float>(cols) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    y[row * cols + c] = __float2bfloat16_rn(xr[c] * r * w[c]);
  }
}

// kNormRowsPerBlock rows per block; dw partials in shared memory, one atomicAdd per column.
__global__ void rms_backward_kernel(float* __restrict__ dx, float* __restrict__ dw,
                                    const float* __restrict__ dy, const float* __restrict__ x,
                                    const float* __restrict__ w, const float* __restrict__ rstd,
                                    int64_t rows, int64_t cols, bool accumulate) {
  extern __shared__ float dw_part[];  // (cols)
  __shared__ float red[kWarp];
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dw_part[c] = 0.0f;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kNormRowsPerBlock;
  const int64_t r1 = min(rows, r0 + kNormRowsPerBlock);
  for (int64_t row = r0; row < r1; ++row) {
    const float* xr = x + row * cols;
    const float* dyr = dy + row * cols;
    const float r = rstd[row];
    float dot = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dyr[c] * w[c] * xr[c];
    dot = block_sum(dot, red) / static_cast<float>(cols);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float g = r * (dyr[c] * w[c] - xr[c] * r * r * dot);
      float* d = dx + row * cols + c;
      *d = accumulate ? *d + g : g;
      dw_part[c] += dyr[c] * xr[c] * r;
    }
  }
  __syncthreads();
  if (dw == nullptr) return;  // frozen weight
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) atomicAdd(dw + c, dw_part[c]);
}

// One thread per (row, head, i < D/2) of the H + 2 Hkv heads of qkv.
__global__ void qkv_rope_split_kernel(bf16* __restrict__ q, bf16* __restrict__ k,
                                      bf16* __restrict__ v, const float* __restrict__ qkv,
                                      const float* __restrict__ cos, const float* __restrict__ sin,
                                      int64_t rows, int64_t seq, int heads, int kv_heads, int d) {
  const int half = d / 2, all_heads = heads + 2 * kv_heads;
  const int64_t total = rows * all_heads * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const int h = static_cast<int>((idx / half) % all_heads);
    const int64_t row = idx / (static_cast<int64_t>(half) * all_heads);
    const float* src = qkv + (row * all_heads + h) * d;
    const float x1 = src[i], x2 = src[i + half];
    float y1 = x1, y2 = x2;
    if (cos != nullptr && h < heads + kv_heads) {  // q and k heads rotate (null: no RoPE)
      const int64_t t = (row % seq) * half + i;
      const float c = cos[t], s = sin[t];
      y1 = x1 * c - x2 * s;
      y2 = x2 * c + x1 * s;
    }
    bf16* dst;
    if (h < heads) {
      dst = q + (row * heads + h) * d;
    } else if (h < heads + kv_heads) {
      dst = k + (row * kv_heads + (h - heads)) * d;
    } else {
      dst = v + (row * kv_heads + (h - heads - kv_heads)) * d;
    }
    dst[i] = __float2bfloat16_rn(y1);
    dst[i + half] = __float2bfloat16_rn(y2);
  }
}

// One thread per (row, output head, i < D/2) of dqkv.
__global__ void qkv_grad_merge_kernel(bf16* __restrict__ dqkv, const float* __restrict__ dq,
                                      const float* __restrict__ dk, const float* __restrict__ dv,
                                      const float* __restrict__ cos, const float* __restrict__ sin,
                                      int64_t seq, int heads, int kv_heads, int d, bool kv_summed) {
  const int half = d / 2, all_heads = heads + 2 * kv_heads;
  // dk / dv rows: per query head (group of H / Hkv summed here), or already summed per KV head.
  const int group = kv_summed ? 1 : heads / kv_heads, kv_row_heads = kv_summed ? kv_heads : heads;
  const int64_t total = seq * all_heads * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const int h = static_cast<int>((idx / half) % all_heads);
    const int64_t row = idx / (static_cast<int64_t>(half) * all_heads);
    float g1 = 0.0f, g2 = 0.0f;
    bool rotate = true;
    if (h < heads) {
      const float* src = dq + (row * heads + h) * d;
      g1 = src[i];
      g2 = src[i + half];
    } else {
      const int kvh = h < heads + kv_heads ? h - heads : h - heads - kv_heads;
      const float* base = h < heads + kv_heads ? dk : dv;
      rotate = h < heads + kv_heads;
      for (int j = 0; j < group; ++j) {
        const float* src = base + (row * kv_row_heads + kvh * group + j) * d;
        g1 += src[i];
        g2 += src[i + half];
      }
    }
    float x1 = g1, x2 = g2;
    if (rotate && cos != nullptr) {  // null: no RoPE
      const int64_t t = row * half + i;
      const float c = cos[t], s = sin[t];
      x1 = g1 * c + g2 * s;
      x2 = g2 * c - g1 * s;
    }
    bf16* dst = dqkv + (row * all_heads + h) * d;
    dst[i] = __float2bfloat16_rn(x1);
    dst[i + half] = __float2bfloat16_rn(x2);
  }
}

__global__ void expand_kv_kernel(bf16* __restrict__ out, const bf16* __restrict__ kv, int64_t seq,
                                 int heads, int kv_heads, int d) {
  const int group = heads / kv_heads;
  const int64_t total = seq * heads * d;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int e = static_cast<int>(idx % d);
    const int h = static_cast<int>((idx / d) % heads);
    const int64_t row = idx / (static_cast<int64_t>(d) * heads);
    out[idx] = kv[(row * kv_heads + h / group) * d + e];
  }
}

// One block per row (matrix, i) of T entries; j > i masked.
// One block per row of S (n·t rows of t): row i of its (t, t) matrix sees columns 0..last,
// last = i when causal, else t - 1; masked columns of P are 0.
__global__ void softmax_kernel(bf16* __restrict__ p, const float* __restrict__ s, int64_t t,
                               bool causal) {
  __shared__ float red[kWarp];
  const int64_t row = blockIdx.x;
  const int64_t last = causal ? row % t : t - 1;
  const float* sr = s + row * t;
  bf16* pr = p + row * t;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j <= last; j += blockDim.x) mx = fmaxf(mx, sr[j]);
  mx = block_max(mx, red);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j <= last; j += blockDim.x) sum += __expf(sr[j] - mx);
  sum = block_sum(sum, red);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < t; j += blockDim.x) {
    pr[j] = __float2bfloat16_rn(j <= last ? __expf(sr[j] - mx) * inv : 0.0f);
  }
}

__global__ void softmax_backward_kernel(bf16* __restrict__ p, const float* __restrict__ dp,
                                        int64_t t, bool causal) {
  __shared__ float red[kWarp];
  const int64_t row = blockIdx.x;
  const int64_t last = causal ? row % t : t - 1;
  bf16* pr = p + row * t;
  const float* dpr = dp + row * t;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j <= last; j += blockDim.x) {
    dot += __bfloat162float(pr[j]) * dpr[j];
  }
  dot = block_sum(dot, red);
  for (int64_t j = threadIdx.x; j <= last; j += blockDim.x) {
    pr[j] = __float2bfloat16_rn(__bfloat162float(pr[j]) * (dpr[j] - dot));
  }
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

// SwiGLU kernels: thread x of block (x, y) owns a pair of adjacent columns (one column when F is
// odd) of rows y, y + gridDim.y, ...: no index division, bf16x2 loads and stores.
__device__ __forceinline__ float silu(float g) { return g * sigmoid(g); }

__global__ void silu_mul_kernel(bf16* __restrict__ m, const bf16* __restrict__ gu, int64_t rows,
                                int64_t f) {
  const bool pairs = f % 2 == 0;
  const int64_t units = pairs ? f / 2 : f;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= units) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const bf16* g_row = gu + r * 2 * f;  // (F) gate, then (F) up
    const bf16* u_row = g_row + f;
    bf16* m_row = m + r * f;
    if (pairs) {
      const float2 g = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(g_row)[c]);
      const float2 u = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(u_row)[c]);
      reinterpret_cast<__nv_bfloat162*>(m_row)[c] =
          __floats2bfloat162_rn(silu(g.x) * u.x, silu(g.y) * u.y);
    } else {
      m_row[c] = __float2bfloat16_rn(silu(__bfloat162float(g_row[c])) * __bfloat162float(u_row[c]));
    }
  }
}

// dg = dm u σ(g)(1 + g(1 - σ(g))),  du = dm silu(g).
__device__ __forceinline__ float2 silu_mul_grad(float d, float g, float u) {
  const float sg = sigmoid(g);
  return make_float2(d * u * sg * (1.0f + g * (1.0f - sg)), d * g * sg);
}

__global__ void silu_mul_backward_kernel(bf16* __restrict__ dgu, const bf16* __restrict__ dm,
                                         const bf16* __restrict__ gu, int64_t rows, int64_t f) {
  const bool pairs = f % 2 == 0;
  const int64_t units = pairs ? f / 2 : f;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= units) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const bf16* g_row = gu + r * 2 * f;
    const bf16* u_row = g_row + f;
    const bf16* dm_row = dm + r * f;
    bf16* dg_row = dgu + r * 2 * f;
    bf16* du_row = dg_row + f;
    if (pairs) {
      const float2 g = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(g_row)[c]);
      const float2 u = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(u_row)[c]);
      const float2 d = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(dm_row)[c]);
      const float2 a = silu_mul_grad(d.x, g.x, u.x), b = silu_mul_grad(d.y, g.y, u.y);
      reinterpret_cast<__nv_bfloat162*>(dg_row)[c] = __floats2bfloat162_rn(a.x, b.x);
      reinterpret_cast<__nv_bfloat162*>(du_row)[c] = __floats2bfloat162_rn(a.y, b.y);
    } else {
      const float2 a = silu_mul_grad(__bfloat162float(dm_row[c]), __bfloat162float(g_row[c]),
                                     __bfloat162float(u_row[c]));
      dg_row[c] = __float2bfloat16_rn(a.x);
      du_row[c] = __float2bfloat16_rn(a.y);
    }
  }
}

__global__ void f32_to_bf16_kernel(bf16* __restrict__ out, const float* __restrict__ in,
                                   int64_t n) {
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[idx] = __float2bfloat16_rn(in[idx]);
  }
}

__global__ void bf16_to_f32_kernel(float* __restrict__ out, const bf16* __restrict__ in,
                                   int64_t n) {
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[idx] = __bfloat162float(in[idx]);
  }
}

__global__ void embedding_forward_kernel(float* __restrict__ x, const float* __restrict__ table,
                                         const int32_t* __restrict__ ids, int64_t cols) {
  const int64_t row = blockIdx.x;
  const float* src = table + static_cast<int64_t>(ids[row]) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) x[row * cols + c] = src[c];
}

__global__ void embedding_backward_kernel(float* __restrict__ dtable, const float* __restrict__ dx,
                                          const int32_t* __restrict__ ids, int64_t cols) {
  const int64_t row = blockIdx.x;
  float* dst = dtable + static_cast<int64_t>(ids[row]) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) atomicAdd(dst + c, dx[row * cols + c]);
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_uniform_kernel(float* __restrict__ x, int64_t n, uint64_t seed, float bound) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(i));
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    x[i] = (2.0f * u - 1.0f) * bound;
  }
}

__global__ void fill_constant_kernel(float* __restrict__ x, int64_t n, float value) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[i] = value;
  }
}

// (column pairs / kThreads, rows capped at the grid's y limit: the kernels stride over rows).
dim3 silu_grid(int64_t rows, int64_t f) {
  const int64_t units = f % 2 == 0 ? f / 2 : f;
  return dim3(static_cast<unsigned>(ceil_div(units, int64_t{kThreads})),
              static_cast<unsigned>(std::min<int64_t>(rows, kMaxGridX)));
}

unsigned grid_for(int64_t total) {
  return static_cast<unsigned>(
      std::min<int64_t>(std::max<int64_t>(ceil_div(total, kThreads), 1), kMaxGridX * 16));
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

Status check_qkv(const QkvShape& s, const char* op) {
  if (s.rows <= 0 || s.seq <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0 ||
      s.head_dim % 2 != 0 || s.heads % s.kv_heads != 0) {
    return invalid_argument(std::string(op) + ": bad shape rows " + std::to_string(s.rows) +
                            ", seq " + std::to_string(s.seq) + ", heads " +
                            std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) +
                            ", head_dim " + std::to_string(s.head_dim));
  }
  return ok_status();
}

}  // namespace

Status train_rms_norm_forward(void* y, float* rstd, const float* x, const float* w, int64_t rows,
                              int64_t cols, float eps, void* stream) {
  if (rows <= 0 || cols <= 0 || rows > (int64_t{1} << 31)) {
    return invalid_argument("train_rms_norm_forward: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(cols));
  }
  rms_forward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(y), rstd, x, w, cols, eps);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                               const float* w, const float* rstd, int64_t rows, int64_t cols,
                               bool accumulate, void* stream) {
  if (rows <= 0 || cols <= 0 || cols > kMaxNormCols) {
    return invalid_argument("train_rms_norm_backward: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(cols) + " (cols <= " + std::to_string(kMaxNormCols) +
                            ")");
  }
  const auto blocks = static_cast<unsigned>(ceil_div(rows, int64_t{kNormRowsPerBlock}));
  const size_t shared = static_cast<size_t>(cols) * sizeof(float);
  if (shared > 48 * 1024) {
    VILA_CUDA_CHECK(cudaFuncSetAttribute(rms_backward_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(shared)));
  }
  rms_backward_kernel<<<blocks, kThreads, shared, as_stream(stream)>>>(dx, dw, dy, x, w, rstd, rows,
                                                                       cols, accumulate);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_qkv_rope_split(void* q, void* k, void* v, const float* qkv, const float* cos,
                            const float* sin, const QkvShape& s, void* stream) {
  VILA_RETURN_IF_ERROR(check_qkv(s, "train_qkv_rope_split"));
  const int64_t total = s.rows * (s.heads + 2 * s.kv_heads) * (s.head_dim / 2);
  qkv_rope_split_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(q), static_cast<bf16*>(k), static_cast<bf16*>(v), qkv, cos, sin, s.rows,
      s.seq, s.heads, s.kv_heads, s.head_dim);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_qkv_grad_merge(void* dqkv, const float* dq, const float* dk_exp, const float* dv_exp,
                            const float* cos, const float* sin, const QkvShape& s, void* stream,
                            bool kv_summed) {
  VILA_RETURN_IF_ERROR(check_qkv(s, "train_qkv_grad_merge"));
  const int64_t total = s.seq * (s.heads + 2 * s.kv_heads) * (s.head_dim / 2);
  qkv_grad_merge_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(dqkv), dq, dk_exp, dv_exp, cos, sin, s.seq, s.heads, s.kv_heads,
      s.head_dim, kv_summed);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_expand_kv(void* out, const void* kv, const QkvShape& s, void* stream) {
  VILA_RETURN_IF_ERROR(check_qkv(s, "train_expand_kv"));
  const int64_t total = s.seq * s.heads * s.head_dim;
  expand_kv_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(out), static_cast<const bf16*>(kv), s.seq, s.heads, s.kv_heads,
      s.head_dim);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_softmax(void* p, const float* s, int64_t n, int64_t t, bool causal, void* stream) {
  if (n <= 0 || t <= 0 || n * t > (int64_t{1} << 31)) {
    return invalid_argument("train_softmax: bad shape " + std::to_string(n) + " x " +
                            std::to_string(t));
  }
  softmax_kernel<<<static_cast<unsigned>(n * t), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(p), s, t, causal);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_softmax_backward(void* p, const float* dp, int64_t n, int64_t t, bool causal,
                              void* stream) {
  if (n <= 0 || t <= 0 || n * t > (int64_t{1} << 31)) {
    return invalid_argument("train_softmax_backward: bad shape " + std::to_string(n) + " x " +
                            std::to_string(t));
  }
  softmax_backward_kernel<<<static_cast<unsigned>(n * t), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(p), dp, t, causal);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_silu_mul(void* m, const void* gu, int64_t rows, int64_t f, void* stream) {
  if (rows <= 0 || f <= 0) {
    return invalid_argument("train_silu_mul: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(f));
  }
  silu_mul_kernel<<<silu_grid(rows, f), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(m), static_cast<const bf16*>(gu), rows, f);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_silu_mul_backward(void* dgu, const void* dm, const void* gu, int64_t rows, int64_t f,
                               void* stream) {
  if (rows <= 0 || f <= 0) {
    return invalid_argument("train_silu_mul_backward: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(f));
  }
  silu_mul_backward_kernel<<<silu_grid(rows, f), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(dgu), static_cast<const bf16*>(dm), static_cast<const bf16*>(gu), rows, f);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_f32_to_bf16(void* out, const float* in, int64_t n, void* stream) {
  if (n < 0) return invalid_argument("train_f32_to_bf16: bad count " + std::to_string(n));
  if (n == 0) return ok_status();
  f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(static_cast<bf16*>(out), in,
                                                                      n);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_bf16_to_f32(float* out, const void* in, int64_t n, void* stream) {
  if (n < 0) return invalid_argument("train_bf16_to_f32: bad count " + std::to_string(n));
  if (n == 0) return ok_status();
  bf16_to_f32_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
      out, static_cast<const bf16*>(in), n);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_embedding_forward(float* x, const float* table, const int32_t* ids, int64_t rows,
                               int64_t cols, void* stream) {
  if (rows <= 0 || cols <= 0) {
    return invalid_argument("train_embedding_forward: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(cols));
  }
  embedding_forward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
      x, table, ids, cols);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t rows,
                                int64_t cols, void* stream) {
  if (rows <= 0 || cols <= 0) {
    return invalid_argument("train_embedding_backward: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(cols));
  }
  embedding_backward_kernel<<<static_cast<unsigned>(rows), kThreads, 0, as_stream(stream)>>>(
      dtable, dx, ids, cols);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_fill_uniform(float* x, int64_t n, uint64_t seed, float bound, void* stream) {
  if (n <= 0) return invalid_argument("train_fill_uniform: bad count " + std::to_string(n));
  fill_uniform_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(x, n, seed, bound);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_fill_constant(float* x, int64_t n, float value, void* stream) {
  if (n <= 0) return invalid_argument("train_fill_constant: bad count " + std::to_string(n));
  fill_constant_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(x, n, value);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
