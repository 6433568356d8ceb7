// Kernels of the Qwen2 training step (train_ops.h): RMSNorm, RoPE + q/k/v split, SwiGLU, causal
// softmax and its backward, embedding, conversions. bf16 activations, fp32 math. The q/k/v split /
// merge and the conversions move 4 elements per access (16-byte f32, 8-byte bf16) when the head
// size and pointers allow, with 32-bit index math; a scalar instance covers the rest.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/partials.h"
#include "backend/cuda/train_ops.h"

namespace vila::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int64_t kNormMaxBlocks = 1024;  // RMSNorm backward blocks (rows grid-strided)
constexpr int64_t kMaxNormCols = 8192;    // dw partials live in shared memory
constexpr int kMaxGridX = 65535;
constexpr int kPairVec = 4;  // q/k/v kernels and conversions: elements per vector access
constexpr int64_t kMaxUnits = int64_t{1} << 30;  // q/k/v threads per launch (32-bit indices)

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

// Rows grid-strided over at most kNormMaxBlocks blocks; dw partials in shared memory, written to
// the block's row of dw_partials (blocks, cols) for the fixed-order sum of partials.h (no
// atomics: reproducible).
__global__ void rms_backward_kernel(float* __restrict__ dx, float* __restrict__ dw,
                                    const float* __restrict__ dy, const float* __restrict__ x,
                                    const float* __restrict__ w, const float* __restrict__ rstd,
                                    int64_t rows, int64_t cols, bool accumulate,
                                    bf16* __restrict__ dx16, float* __restrict__ dw_partials) {
  extern __shared__ float dw_part[];  // (cols)
  __shared__ float red[kWarp];
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dw_part[c] = 0.0f;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * cols;
    const float* dyr = dy + row * cols;
    const float r = rstd[row];
    float dot = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) dot += dyr[c] * w[c] * xr[c];
    dot = block_sum(dot, red) / static_cast<float>(cols);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float g = r * (dyr[c] * w[c] - xr[c] * r * r * dot);
      float* d = dx + row * cols + c;
      const float out = accumulate ? *d + g : g;
      *d = out;
      if (dx16 != nullptr) dx16[row * cols + c] = __float2bfloat16_rn(out);
      dw_part[c] += dyr[c] * xr[c] * r;
    }
  }
  __syncthreads();
  if (dw == nullptr) return;  // frozen weight
  float* out = dw_partials + static_cast<int64_t>(blockIdx.x) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[c] = dw_part[c];
}

// V floats at p (16-byte aligned when V = 4) / V bf16 at p (8-byte aligned when V = 4).
template <int V>
__device__ __forceinline__ void load_f32(float (&v)[V], const float* p) {
  if constexpr (V == kPairVec) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = p[j];
  }
}

template <int V>
__device__ __forceinline__ void store_bf16(bf16* p, const float (&v)[V]) {
  if constexpr (V == kPairVec) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]),
                         hi = __floats2bfloat162_rn(v[2], v[3]);
    *reinterpret_cast<uint2*>(p) = make_uint2(*reinterpret_cast<const uint32_t*>(&lo),
                                              *reinterpret_cast<const uint32_t*>(&hi));
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) p[j] = __float2bfloat16_rn(v[j]);
  }
}

// One thread per (row, head, V consecutive i < D/2) of the H + 2 Hkv heads of qkv: 32-bit index
// math (the launcher splits the rows so that rows · units < 2³¹). Rows sit at positions
// (pos0 + row) % seq. V = kPairVec: 16-byte loads, 8-byte stores; V = 1: any D, any alignment.
template <int V>
__global__ void qkv_rope_split_kernel(bf16* __restrict__ q, bf16* __restrict__ k,
                                      bf16* __restrict__ v, const float* __restrict__ qkv,
                                      const float* __restrict__ cos, const float* __restrict__ sin,
                                      int rows, int64_t pos0, int64_t seq, int heads, int kv_heads,
                                      int d) {
  const int half = d / 2, head_units = half / V, all_heads = heads + 2 * kv_heads;
  const int row_units = all_heads * head_units, total = rows * row_units;
  for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += gridDim.x * blockDim.x) {
    const int row = idx / row_units, rest = idx - row * row_units;
    const int h = rest / head_units, i = (rest - h * head_units) * V;
    const float* src = qkv + (static_cast<int64_t>(row) * all_heads + h) * d + i;
    float y1[V], y2[V];
    load_f32(y1, src);
    load_f32(y2, src + half);
    if (cos != nullptr && h < heads + kv_heads) {  // q and k heads rotate (null: no RoPE)
      const int64_t t = ((pos0 + row) % seq) * half + i;
      float c[V], s[V];
      load_f32(c, cos + t);
      load_f32(s, sin + t);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float x1 = y1[j], x2 = y2[j];
        y1[j] = x1 * c[j] - x2 * s[j];
        y2[j] = x2 * c[j] + x1 * s[j];
      }
    }
    bf16* dst;
    if (h < heads) {
      dst = q + (static_cast<int64_t>(row) * heads + h) * d;
    } else if (h < heads + kv_heads) {
      dst = k + (static_cast<int64_t>(row) * kv_heads + (h - heads)) * d;
    } else {
      dst = v + (static_cast<int64_t>(row) * kv_heads + (h - heads - kv_heads)) * d;
    }
    store_bf16(dst + i, y1);
    store_bf16(dst + i + half, y2);
  }
}

// One thread per (row, output head, V consecutive i < D/2) of dqkv, as in the split; cos, sin
// start at the chunk's first row.
template <int V>
__global__ void qkv_grad_merge_kernel(bf16* __restrict__ dqkv, const float* __restrict__ dq,
                                      const float* __restrict__ dk, const float* __restrict__ dv,
                                      const float* __restrict__ cos, const float* __restrict__ sin,
                                      int rows, int heads, int kv_heads, int d, bool kv_summed) {
  const int half = d / 2, head_units = half / V, all_heads = heads + 2 * kv_heads;
  const int row_units = all_heads * head_units, total = rows * row_units;
  // dk / dv rows: per query head (group of H / Hkv summed here), or already summed per KV head.
  const int group = kv_summed ? 1 : heads / kv_heads, kv_row_heads = kv_summed ? kv_heads : heads;
  for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
       idx += gridDim.x * blockDim.x) {
    const int row = idx / row_units, rest = idx - row * row_units;
    const int h = rest / head_units, i = (rest - h * head_units) * V;
    float g1[V], g2[V];
    bool rotate = true;
    if (h < heads) {
      const float* src = dq + (static_cast<int64_t>(row) * heads + h) * d + i;
      load_f32(g1, src);
      load_f32(g2, src + half);
    } else {
      const int kvh = h < heads + kv_heads ? h - heads : h - heads - kv_heads;
      const float* base = h < heads + kv_heads ? dk : dv;
      rotate = h < heads + kv_heads;
#pragma unroll
      for (int j = 0; j < V; ++j) g1[j] = g2[j] = 0.0f;
      for (int m = 0; m < group; ++m) {
        const float* src =
            base + (static_cast<int64_t>(row) * kv_row_heads + kvh * group + m) * d + i;
        float a[V], b[V];
        load_f32(a, src);
        load_f32(b, src + half);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          g1[j] += a[j];
          g2[j] += b[j];
        }
      }
    }
    if (rotate && cos != nullptr) {  // null: no RoPE
      const int64_t t = static_cast<int64_t>(row) * half + i;
      float c[V], s[V];
      load_f32(c, cos + t);
      load_f32(s, sin + t);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float x1 = g1[j], x2 = g2[j];
        g1[j] = x1 * c[j] + x2 * s[j];
        g2[j] = x2 * c[j] - x1 * s[j];
      }
    }
    bf16* dst = dqkv + (static_cast<int64_t>(row) * all_heads + h) * d + i;
    store_bf16(dst, g1);
    store_bf16(dst + half, g2);
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

// vec: both pointers aligned for 4-element vectors (16-byte f32, 8-byte bf16); elements below
// n - n % 4 go four at a time, the tail (or, without vec, everything) one per thread.
__global__ void f32_to_bf16_kernel(bf16* __restrict__ out, const float* __restrict__ in, int64_t n,
                                   bool vec) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t n4 = vec ? n / kPairVec * kPairVec : 0;
  for (int64_t i = first * kPairVec; i < n4; i += stride * kPairVec) {
    float v[kPairVec];
    load_f32(v, in + i);
    store_bf16(out + i, v);
  }
  for (int64_t i = n4 + first; i < n; i += stride) out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void bf16_to_f32_kernel(float* __restrict__ out, const bf16* __restrict__ in, int64_t n,
                                   bool vec) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t n4 = vec ? n / kPairVec * kPairVec : 0;
  for (int64_t i = first * kPairVec; i < n4; i += stride * kPairVec) {
    const uint2 u = *reinterpret_cast<const uint2*>(in + i);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
    *reinterpret_cast<float4*>(out + i) = make_float4(lo.x, lo.y, hi.x, hi.y);
  }
  for (int64_t i = n4 + first; i < n; i += stride) out[i] = __bfloat162float(in[i]);
}

__global__ void embedding_forward_kernel(float* __restrict__ x, const float* __restrict__ table,
                                         const int32_t* __restrict__ ids, int64_t cols) {
  const int64_t row = blockIdx.x;
  const float* src = table + static_cast<int64_t>(ids[row]) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) x[row * cols + c] = src[c];
}

// One block per group of rows sharing an id: the group's rows of dx summed in row order, then
// added to the id's table row (one writer per row: no atomics, reproducible).
__global__ void embedding_backward_kernel(float* __restrict__ dtable, const float* __restrict__ dx,
                                          const int32_t* __restrict__ order,
                                          const int32_t* __restrict__ seg_start,
                                          const int32_t* __restrict__ seg_id, int64_t cols) {
  const int32_t begin = seg_start[blockIdx.x], end = seg_start[blockIdx.x + 1];
  float* dst = dtable + static_cast<int64_t>(seg_id[blockIdx.x]) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float s = 0.0f;
    for (int32_t i = begin; i < end; ++i) s += dx[static_cast<int64_t>(order[i]) * cols + c];
    dst[c] += s;
  }
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

// Null counts as aligned (an absent operand).
bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

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
                               bool accumulate, void* stream, void* dx16) {
  if (rows <= 0 || cols <= 0 || cols > kMaxNormCols) {
    return invalid_argument("train_rms_norm_backward: bad shape " + std::to_string(rows) + " x " +
                            std::to_string(cols) + " (cols <= " + std::to_string(kMaxNormCols) +
                            ")");
  }
  const auto blocks = static_cast<unsigned>(std::min(rows, kNormMaxBlocks));
  const size_t shared = static_cast<size_t>(cols) * sizeof(float);
  if (shared > 48 * 1024) {
    VILA_CUDA_CHECK(cudaFuncSetAttribute(rms_backward_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(shared)));
  }
  float* partials = nullptr;  // (blocks, cols): dw per block, summed in block order below
  if (dw != nullptr) {
    VILA_ASSIGN_OR_RETURN(void* ws, partials_workspace(size_t{blocks} * cols * sizeof(float)));
    partials = static_cast<float*>(ws);
  }
  rms_backward_kernel<<<blocks, kThreads, shared, as_stream(stream)>>>(
      dx, dw, dy, x, w, rstd, rows, cols, accumulate, static_cast<bf16*>(dx16), partials);
  VILA_CUDA_CHECK(cudaGetLastError());
  if (dw != nullptr) VILA_RETURN_IF_ERROR(add_partials(dw, partials, blocks, cols, true, stream));
  return ok_status();
}

Status train_qkv_rope_split(void* q, void* k, void* v, const float* qkv, const float* cos,
                            const float* sin, const QkvShape& s, void* stream) {
  VILA_RETURN_IF_ERROR(check_qkv(s, "train_qkv_rope_split"));
  const int half = s.head_dim / 2, all_heads = s.heads + 2 * s.kv_heads;
  const bool vec = half % kPairVec == 0 && aligned(qkv, 16) && aligned(cos, 16) &&
                   aligned(sin, 16) && aligned(q, 8) && aligned(k, 8) && aligned(v, 8);
  const int64_t row_units = int64_t{all_heads} * half / (vec ? kPairVec : 1);
  const int64_t chunk = std::max<int64_t>(kMaxUnits / row_units, 1);  // rows per launch
  for (int64_t r0 = 0; r0 < s.rows; r0 += chunk) {
    const int rows = static_cast<int>(std::min(chunk, s.rows - r0));
    auto* qc = static_cast<bf16*>(q) + r0 * s.heads * s.head_dim;
    auto* kc = static_cast<bf16*>(k) + r0 * s.kv_heads * s.head_dim;
    auto* vc = static_cast<bf16*>(v) + r0 * s.kv_heads * s.head_dim;
    const float* src = qkv + r0 * all_heads * s.head_dim;
    const unsigned grid = grid_for(rows * row_units);
    if (vec) {
      qkv_rope_split_kernel<kPairVec><<<grid, kThreads, 0, as_stream(stream)>>>(
          qc, kc, vc, src, cos, sin, rows, r0 % s.seq, s.seq, s.heads, s.kv_heads, s.head_dim);
    } else {
      qkv_rope_split_kernel<1><<<grid, kThreads, 0, as_stream(stream)>>>(
          qc, kc, vc, src, cos, sin, rows, r0 % s.seq, s.seq, s.heads, s.kv_heads, s.head_dim);
    }
    VILA_CUDA_CHECK(cudaGetLastError());
  }
  return ok_status();
}

Status train_qkv_grad_merge(void* dqkv, const float* dq, const float* dk_exp, const float* dv_exp,
                            const float* cos, const float* sin, const QkvShape& s, void* stream,
                            bool kv_summed) {
  VILA_RETURN_IF_ERROR(check_qkv(s, "train_qkv_grad_merge"));
  const int half = s.head_dim / 2, all_heads = s.heads + 2 * s.kv_heads;
  const bool vec = half % kPairVec == 0 && aligned(dq, 16) && aligned(dk_exp, 16) &&
                   aligned(dv_exp, 16) && aligned(cos, 16) && aligned(sin, 16) && aligned(dqkv, 8);
  const int64_t row_units = int64_t{all_heads} * half / (vec ? kPairVec : 1);
  const int64_t chunk = std::max<int64_t>(kMaxUnits / row_units, 1);  // rows per launch
  const int64_t kv_width = (kv_summed ? s.kv_heads : s.heads) * int64_t{s.head_dim};
  for (int64_t r0 = 0; r0 < s.seq; r0 += chunk) {
    const int rows = static_cast<int>(std::min(chunk, s.seq - r0));
    auto* out = static_cast<bf16*>(dqkv) + r0 * all_heads * s.head_dim;
    const float* q = dq + r0 * s.heads * s.head_dim;
    const float* k = dk_exp + r0 * kv_width;
    const float* v = dv_exp + r0 * kv_width;
    const float* c = cos != nullptr ? cos + r0 * half : nullptr;
    const float* sn = sin != nullptr ? sin + r0 * half : nullptr;
    const unsigned grid = grid_for(rows * row_units);
    if (vec) {
      qkv_grad_merge_kernel<kPairVec><<<grid, kThreads, 0, as_stream(stream)>>>(
          out, q, k, v, c, sn, rows, s.heads, s.kv_heads, s.head_dim, kv_summed);
    } else {
      qkv_grad_merge_kernel<1><<<grid, kThreads, 0, as_stream(stream)>>>(
          out, q, k, v, c, sn, rows, s.heads, s.kv_heads, s.head_dim, kv_summed);
    }
    VILA_CUDA_CHECK(cudaGetLastError());
  }
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
  const bool vec = aligned(out, 8) && aligned(in, 16);
  f32_to_bf16_kernel<<<grid_for(vec ? ceil_div(n, int64_t{kPairVec}) : n), kThreads, 0,
                       as_stream(stream)>>>(static_cast<bf16*>(out), in, n, vec);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status train_bf16_to_f32(float* out, const void* in, int64_t n, void* stream) {
  if (n < 0) return invalid_argument("train_bf16_to_f32: bad count " + std::to_string(n));
  if (n == 0) return ok_status();
  const bool vec = aligned(out, 16) && aligned(in, 8);
  bf16_to_f32_kernel<<<grid_for(vec ? ceil_div(n, int64_t{kPairVec}) : n), kThreads, 0,
                       as_stream(stream)>>>(out, static_cast<const bf16*>(in), n, vec);
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

void embedding_groups(const int32_t* ids, int64_t rows, EmbeddingGroups* groups) {
  groups->order.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    groups->order[static_cast<size_t>(r)] = static_cast<int32_t>(r);
  std::stable_sort(groups->order.begin(), groups->order.end(),
                   [ids](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  groups->seg_start.clear();
  groups->seg_id.clear();
  for (int64_t i = 0; i < rows; ++i) {
    const int32_t id = ids[groups->order[static_cast<size_t>(i)]];
    if (i == 0 || id != groups->seg_id.back()) {
      groups->seg_start.push_back(static_cast<int32_t>(i));
      groups->seg_id.push_back(id);
    }
  }
  groups->seg_start.push_back(static_cast<int32_t>(rows));
}

Status train_embedding_backward(float* dtable, const float* dx, const int32_t* order,
                                const int32_t* seg_start, const int32_t* seg_id, int64_t segments,
                                int64_t cols, void* stream) {
  if (segments <= 0 || cols <= 0 || segments > INT32_MAX) {
    return invalid_argument("train_embedding_backward: bad shape " + std::to_string(segments) +
                            " groups x " + std::to_string(cols));
  }
  embedding_backward_kernel<<<static_cast<unsigned>(segments), kThreads, 0, as_stream(stream)>>>(
      dtable, dx, order, seg_start, seg_id, cols);
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
