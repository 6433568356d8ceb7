// Kernels of the VLM training step beyond the LLM (train_vlm_ops.h): LayerNorm forward / backward,
// GELU forward / backward, patch im2col, position embeddings, fp32 column sums, spatial-to-channel
// and the media splice. bf16 activations, fp32 math (the LayerNorm row statistics: fp32 per lane,
// reduced across the warp in double).
//
// Bandwidth: rows of up to kLnMaxRegCols columns (a multiple of 4, 16-byte aligned) take the
// register LayerNorm kernels: one warp per row, the row's float4s held in registers, warp-shuffle
// reductions, dw / db summed per lane over the warp's rows and per block in shared memory (warp
// order), then across blocks in block order (partials.h). Wider or unaligned rows take the
// block-per-rows fallback. No fp32 atomics anywhere here: every sum is bitwise reproducible.
// GELU and the column sums use 16-byte loads / stores when the pointers allow (scalar otherwise).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/partials.h"
#include "backend/cuda/train_vlm_ops.h"

namespace vila::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = kThreads / kWarp;  // LayerNorm: one warp per row
constexpr int kF32Vec = 4;                        // floats per 16-byte vector
constexpr int kBf16Vec = 8;                       // bf16 per 16-byte vector
constexpr int kLnMaxVecs = 12;                    // register LayerNorm: float4s per lane (at most)
constexpr int64_t kLnMaxRegCols = int64_t{kWarp} * kF32Vec * kLnMaxVecs;  // 1536
constexpr int kLnMaxRowsPerBlock = 32;  // LayerNorm backward fallback: rows per block (at most)
constexpr int64_t kMaxLnCols = 16384;   // dw / db partials live in shared memory (128 KiB)
constexpr int kMaxGridX = 65535;
constexpr int kColTile = 32;          // column sum: vectors of columns per block (one per lane)
constexpr int kColLanes = 8;          // column sum: row lanes per block
constexpr int64_t kColMinChunk = 64;  // column sum: rows per block (at least)
constexpr int kMaxGridY = 65535;
constexpr int kWavesPerSm = 4;  // grid sizing: blocks per SM that the reductions aim for

// GELU constants (train/activation.cpp).
constexpr float kSqrtHalf = 0.70710678118654752440f;    // 1 / √2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1 / √(2π)
constexpr float kGeluBeta = 0.79788456080286535588f;    // √(2/π)
constexpr float kGeluKappa = 0.044715f;
// Cap of -2u in the tanh form: e^80 < 2^126 keeps e finite and __fdividef in range, so σ stays a
// normal float and e σ ≈ 1 (not inf · 0) far in the left tail, where GELU and its slope are ~0.
constexpr float kGeluMaxExp = 80.0f;

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sums a and b over the block (kThreads threads); every thread gets both, in the same order.
__device__ void block_sum2(double& a, double& b, double* shared /* (2 · kWarpsPerBlock) */) {
  a = warp_sum(a);
  b = warp_sum(b);
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  __syncthreads();  // shared may still be read by the previous call
  if (lane == 0) {
    shared[warp] = a;
    shared[kWarpsPerBlock + warp] = b;
  }
  __syncthreads();
  a = 0.0;
  b = 0.0;
  for (int i = 0; i < kWarpsPerBlock; ++i) {
    a += shared[i];
    b += shared[kWarpsPerBlock + i];
  }
}

__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}

__device__ __forceinline__ float hsum(float4 v) { return (v.x + v.y) + (v.z + v.w); }

// Stores 4 floats as 4 bf16 (8 bytes, p 8-byte aligned).
__device__ __forceinline__ void store4_bf16(bf16* p, float a, float b, float c, float d) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(a, b), hi = __floats2bfloat162_rn(c, d);
  uint2 u;
  u.x = *reinterpret_cast<const uint32_t*>(&lo);
  u.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p) = u;
}

// Register LayerNorm forward: one warp per row (rows strided over the grid's warps); lane l holds
// float4s l, l + 32, ... (< vecs = C / 4) of x in registers. μ and the biased variance: fp32 sums
// per lane, double across the warp.
__global__ void __launch_bounds__(kThreads)
    layer_norm_forward_reg_kernel(bf16* __restrict__ y, float* __restrict__ mean,
                                  float* __restrict__ rstd, const float* __restrict__ x,
                                  const float* __restrict__ w, const float* __restrict__ b,
                                  int rows, int cols, float eps) {
  const int lane = threadIdx.x % kWarp, vecs = cols / kF32Vec;
  const int warps = gridDim.x * kWarpsPerBlock;
  for (int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp; row < rows; row += warps) {
    const float* xr = x + static_cast<int64_t>(row) * cols;  // (C)
    float4 v[kLnMaxVecs];                                    // this lane's part of the row
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < kLnMaxVecs; ++j) {
      const int c = (lane + j * kWarp) * kF32Vec;
      if (c < cols) {
        v[j] = load4(xr + c);
        sum += hsum(v[j]);
      }
    }
    const auto mu = static_cast<float>(warp_sum(static_cast<double>(sum)) / cols);
    float sum_sq = 0.0f;
#pragma unroll
    for (int j = 0; j < kLnMaxVecs; ++j) {
      if (lane + j * kWarp < vecs) {
        v[j] = make_float4(v[j].x - mu, v[j].y - mu, v[j].z - mu, v[j].w - mu);
        sum_sq += (v[j].x * v[j].x + v[j].y * v[j].y) + (v[j].z * v[j].z + v[j].w * v[j].w);
      }
    }
    const auto variance = static_cast<float>(warp_sum(static_cast<double>(sum_sq)) / cols);
    const float r = 1.0f / sqrtf(variance + eps);
    if (lane == 0) {
      mean[row] = mu;
      rstd[row] = r;
    }
    bf16* yr = y + static_cast<int64_t>(row) * cols;  // (C)
#pragma unroll
    for (int j = 0; j < kLnMaxVecs; ++j) {
      const int c = (lane + j * kWarp) * kF32Vec;
      if (c < cols) {
        const float4 wv = load4(w + c);
        const float4 bv = b != nullptr ? load4(b + c) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        store4_bf16(yr + c, v[j].x * r * wv.x + bv.x, v[j].y * r * wv.y + bv.y,
                    v[j].z * r * wv.z + bv.z, v[j].w * r * wv.w + bv.w);
      }
    }
  }
}

// Register LayerNorm backward: one warp per row as in the forward; lane l keeps x̂ and g = dy w of
// its float4s in registers, and dw, db partials of the same columns summed over the warp's rows.
// The block sums its warps' partials in shared memory in warp order into its partials row (see
// the end of the kernel). dx may alias dy (each element is read before it is written, by the same
// lane).
__global__ void __launch_bounds__(kThreads, 1)
    layer_norm_backward_reg_kernel(float* dx, float* __restrict__ dw, float* __restrict__ db,
                                   const float* dy, const float* __restrict__ x,
                                   const float* __restrict__ w, const float* __restrict__ mean,
                                   const float* __restrict__ rstd, int rows, int cols,
                                   bool accumulate, bf16* __restrict__ dx16,
                                   float* __restrict__ partials) {
  const int lane = threadIdx.x % kWarp;
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float4 dw_acc[kLnMaxVecs], db_acc[kLnMaxVecs];
#pragma unroll
  for (int j = 0; j < kLnMaxVecs; ++j) dw_acc[j] = db_acc[j] = zero;
  const int warps = gridDim.x * kWarpsPerBlock;
  for (int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp; row < rows; row += warps) {
    const int64_t base = static_cast<int64_t>(row) * cols;
    const float mu = mean[row], r = rstd[row];
    float4 xh[kLnMaxVecs], g[kLnMaxVecs];  // x̂ and dy w of this lane's columns
    float sum_g = 0.0f, sum_g_xhat = 0.0f;
#pragma unroll
    for (int j = 0; j < kLnMaxVecs; ++j) {
      const int c = (lane + j * kWarp) * kF32Vec;
      if (c < cols) {
        const float4 xv = load4(x + base + c), d = load4(dy + base + c), wv = load4(w + c);
        xh[j] = make_float4((xv.x - mu) * r, (xv.y - mu) * r, (xv.z - mu) * r, (xv.w - mu) * r);
        g[j] = make_float4(d.x * wv.x, d.y * wv.y, d.z * wv.z, d.w * wv.w);
        sum_g += hsum(g[j]);
        sum_g_xhat += (g[j].x * xh[j].x + g[j].y * xh[j].y) + (g[j].z * xh[j].z + g[j].w * xh[j].w);
        dw_acc[j].x += d.x * xh[j].x;
        dw_acc[j].y += d.y * xh[j].y;
        dw_acc[j].z += d.z * xh[j].z;
        dw_acc[j].w += d.w * xh[j].w;
        db_acc[j].x += d.x;
        db_acc[j].y += d.y;
        db_acc[j].z += d.z;
        db_acc[j].w += d.w;
      }
    }
    if (dx == nullptr) continue;  // uniform over the warp
    const auto mean_g = static_cast<float>(warp_sum(static_cast<double>(sum_g)) / cols);
    const auto mean_g_xhat = static_cast<float>(warp_sum(static_cast<double>(sum_g_xhat)) / cols);
#pragma unroll
    for (int j = 0; j < kLnMaxVecs; ++j) {
      const int c = (lane + j * kWarp) * kF32Vec;
      if (c < cols) {
        float4 v = make_float4(r * (g[j].x - mean_g - xh[j].x * mean_g_xhat),
                               r * (g[j].y - mean_g - xh[j].y * mean_g_xhat),
                               r * (g[j].z - mean_g - xh[j].z * mean_g_xhat),
                               r * (g[j].w - mean_g - xh[j].w * mean_g_xhat));
        float4* out = reinterpret_cast<float4*>(dx + base + c);
        if (accumulate) {
          const float4 old = *out;
          v = make_float4(old.x + v.x, old.y + v.y, old.z + v.z, old.w + v.w);
        }
        *out = v;
        if (dx16 != nullptr) {  // 4 bf16 (8-byte aligned: checked by the launcher)
          const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y),
                               hi = __floats2bfloat162_rn(v.z, v.w);
          *reinterpret_cast<uint2*>(dx16 + base + c) = make_uint2(
              *reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
        }
      }
    }
  }
  // The warps' dw, db partials meet in shared memory (warp_part (warps, 2C)), summed in warp
  // order per column into the block's rows of the (blocks, C) dw and db planes of `partials`,
  // which add_partials sums in block order (no atomics: reproducible).
  extern __shared__ float warp_part[];
  float* mine = warp_part + static_cast<int64_t>(threadIdx.x / kWarp) * 2 * cols;
#pragma unroll
  for (int j = 0; j < kLnMaxVecs; ++j) {
    const int c = (lane + j * kWarp) * kF32Vec;
    if (c < cols) {
      *reinterpret_cast<float4*>(mine + c) = dw_acc[j];
      *reinterpret_cast<float4*>(mine + cols + c) = db_acc[j];
    }
  }
  __syncthreads();
  for (int c = threadIdx.x; c < 2 * cols; c += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < kWarpsPerBlock; ++w) s += warp_part[w * 2 * cols + c];
    const int64_t plane = c < cols ? 0 : gridDim.x;  // dw rows, then db rows
    partials[(plane + blockIdx.x) * cols + c % cols] = s;
  }
}

// Fallback for rows the register kernel does not take. One warp per row: two passes for μ and the
// biased variance in double, a third for y.
__global__ void layer_norm_forward_kernel(bf16* __restrict__ y, float* __restrict__ mean,
                                          float* __restrict__ rstd, const float* __restrict__ x,
                                          const float* __restrict__ w, const float* __restrict__ b,
                                          int64_t rows, int64_t cols, float eps) {
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (row >= rows) return;
  const float* xr = x + row * cols;  // (C)
  double sum = 0.0;
  for (int64_t c = lane; c < cols; c += kWarp) sum += xr[c];
  const double mu = warp_sum(sum) / static_cast<double>(cols);
  double sum_sq = 0.0;
  for (int64_t c = lane; c < cols; c += kWarp) {
    const double d = xr[c] - mu;
    sum_sq += d * d;
  }
  const auto variance = static_cast<float>(warp_sum(sum_sq) / static_cast<double>(cols));
  const auto mu_f = static_cast<float>(mu);
  const float r = 1.0f / sqrtf(variance + eps);
  if (lane == 0) {
    mean[row] = mu_f;
    rstd[row] = r;
  }
  bf16* yr = y + row * cols;  // (C)
  for (int64_t c = lane; c < cols; c += kWarp) {
    const float v = (xr[c] - mu_f) * r * w[c];
    yr[c] = __float2bfloat16_rn(b != nullptr ? v + b[c] : v);
  }
}

// Fallback: rows_per_block rows per block of kThreads threads; thread t owns columns t,
// t + kThreads, ... of the dw / db partials in shared memory (no races), written at the end to the
// block's rows of the (blocks, C) dw and db planes of `partials` for add_partials.
__global__ void layer_norm_backward_kernel(float* dx, float* __restrict__ dw,
                                           float* __restrict__ db, const float* __restrict__ dy,
                                           const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ mean,
                                           const float* __restrict__ rstd, int64_t rows,
                                           int64_t cols, int rows_per_block, bool accumulate,
                                           bf16* __restrict__ dx16, float* __restrict__ partials) {
  extern __shared__ float block_part[];  // dw (C) then db (C)
  __shared__ double red[2 * kWarpsPerBlock];
  float* dw_part = block_part;
  float* db_part = block_part + cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    dw_part[c] = 0.0f;
    db_part[c] = 0.0f;
  }
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t r1 = min(rows, r0 + rows_per_block);
  for (int64_t row = r0; row < r1; ++row) {
    const float* xr = x + row * cols;    // (C)
    const float* dyr = dy + row * cols;  // (C)
    const float mu = mean[row], r = rstd[row];
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xhat = (xr[c] - mu) * r;
      const float g = dyr[c] * w[c];
      sum_g += g;
      sum_g_xhat += static_cast<double>(g) * xhat;
      dw_part[c] += dyr[c] * xhat;
      db_part[c] += dyr[c];
    }
    if (dx == nullptr) continue;  // uniform over the block
    block_sum2(sum_g, sum_g_xhat, red);
    const auto mean_g = static_cast<float>(sum_g / static_cast<double>(cols));
    const auto mean_g_xhat = static_cast<float>(sum_g_xhat / static_cast<double>(cols));
    float* dxr = dx + row * cols;  // (C)
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float xhat = (xr[c] - mu) * r;
      const float v = r * (dyr[c] * w[c] - mean_g - xhat * mean_g_xhat);
      const float out = accumulate ? dxr[c] + v : v;
      dxr[c] = out;
      if (dx16 != nullptr) dx16[row * cols + c] = __float2bfloat16_rn(out);
    }
  }
  float* dw_out = partials + static_cast<int64_t>(blockIdx.x) * cols;
  float* db_out = partials + static_cast<int64_t>(gridDim.x + blockIdx.x) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    dw_out[c] = dw_part[c];
    db_out[c] = db_part[c];
  }
}

// tanh form through ½ (1 + tanh u) = σ(2u) = 1 / (1 + e), e = exp(-2u): no cancellation in the
// left tail, and 1 - σ(2u) = e σ(2u).
__device__ __forceinline__ float gelu_value(float v, bool tanh_form) {
  if (tanh_form) {
    const float e = __expf(fminf(-2.0f * kGeluBeta * (v + kGeluKappa * (v * v * v)), kGeluMaxExp));
    return __fdividef(v, 1.0f + e);
  }
  return 0.5f * v * (1.0f + erff(v * kSqrtHalf));
}

__device__ __forceinline__ float gelu_grad(float v, bool tanh_form) {
  if (tanh_form) {
    const float e = __expf(fminf(-2.0f * kGeluBeta * (v + kGeluKappa * (v * v * v)), kGeluMaxExp));
    const float s = __fdividef(1.0f, 1.0f + e);  // ½ (1 + tanh u)
    const float du = kGeluBeta * (1.0f + 3.0f * kGeluKappa * v * v);
    return s + 2.0f * v * s * (e * s) * du;  // ½ (1 - tanh² u) = 2 σ (1 - σ)
  }
  const float cdf = 0.5f * (1.0f + erff(v * kSqrtHalf));
  const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
  return cdf + v * pdf;
}

// 8 bf16 of a 16-byte vector, widened / rounded in pairs.
__device__ __forceinline__ void unpack8(const uint4& u, float (&f)[kBf16Vec]) {
  const uint32_t words[kBf16Vec / 2] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < kBf16Vec / 2; ++i) {
    const float2 p = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&words[i]));
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}

__device__ __forceinline__ uint4 pack8(const float (&f)[kBf16Vec]) {
  uint32_t words[kBf16Vec / 2];
#pragma unroll
  for (int i = 0; i < kBf16Vec / 2; ++i) {
    const __nv_bfloat162 p = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    words[i] = *reinterpret_cast<const uint32_t*>(&p);
  }
  return make_uint4(words[0], words[1], words[2], words[3]);
}

// vec: all pointers 16-byte aligned; element i < n8 = n - n % 8 goes in 16-byte vectors, the
// n % 8 tail (or, without vec, everything) one element per thread.
__global__ void gelu_forward_kernel(bf16* __restrict__ y, const bf16* __restrict__ x, int64_t n,
                                    bool tanh_form, bool vec) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t n8 = vec ? n / kBf16Vec * kBf16Vec : 0;
  for (int64_t i = first * kBf16Vec; i < n8; i += stride * kBf16Vec) {
    float f[kBf16Vec];
    unpack8(*reinterpret_cast<const uint4*>(x + i), f);
#pragma unroll
    for (int e = 0; e < kBf16Vec; ++e) f[e] = gelu_value(f[e], tanh_form);
    *reinterpret_cast<uint4*>(y + i) = pack8(f);
  }
  for (int64_t i = n8 + first; i < n; i += stride) {
    y[i] = __float2bfloat16_rn(gelu_value(__bfloat162float(x[i]), tanh_form));
  }
}

// dx may alias dy: elements are read before they are written, by the same thread.
__global__ void gelu_backward_kernel(bf16* dx, const bf16* dy, const bf16* __restrict__ x,
                                     int64_t n, bool tanh_form, bool vec) {
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t n8 = vec ? n / kBf16Vec * kBf16Vec : 0;
  for (int64_t i = first * kBf16Vec; i < n8; i += stride * kBf16Vec) {
    float g[kBf16Vec], v[kBf16Vec];
    unpack8(*reinterpret_cast<const uint4*>(dy + i), g);
    unpack8(*reinterpret_cast<const uint4*>(x + i), v);
#pragma unroll
    for (int e = 0; e < kBf16Vec; ++e) g[e] *= gelu_grad(v[e], tanh_form);
    *reinterpret_cast<uint4*>(dx + i) = pack8(g);
  }
  for (int64_t i = n8 + first; i < n; i += stride) {
    const float g = __bfloat162float(dy[i]) * gelu_grad(__bfloat162float(x[i]), tanh_form);
    dx[i] = __float2bfloat16_rn(g);
  }
}

// One thread per element of cols (N·P, K), K = Cin·p·p; writes are coalesced.
__global__ void patch_im2col_kernel(bf16* __restrict__ cols, const float* __restrict__ pixels,
                                    int64_t n_images, int64_t channels, int64_t size,
                                    int64_t patch) {
  const int64_t grid = size / patch, n_patches = grid * grid;
  const int64_t k = channels * patch * patch;
  const int64_t total = n_images * n_patches * k;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t col = idx % k, row = idx / k;
    const int64_t kx = col % patch, ky = (col / patch) % patch, c = col / (patch * patch);
    const int64_t pi = row % n_patches, img = row / n_patches;
    const int64_t py = pi / grid, px = pi % grid;
    const int64_t src = ((img * channels + c) * size + py * patch + ky) * size + px * patch + kx;
    cols[idx] = __float2bfloat16_rn(pixels[src]);
  }
}

__global__ void add_position_kernel(float* __restrict__ x, const float* __restrict__ pos,
                                    int64_t total, int64_t per_image) {
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[idx] += pos[idx % per_image];
  }
}

// One thread per element of dpos (P·C); images summed in order (deterministic).
__global__ void position_backward_kernel(float* __restrict__ dpos, const float* __restrict__ dx,
                                         int64_t n_images, int64_t per_image) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < per_image;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t i = 0; i < n_images; ++i) s += dx[i * per_image + e];
    dpos[e] += s;
  }
}

// Block (kColTile, kColLanes): lane x owns columns (blockIdx.x · kColTile + x) · V + [0, V) (one
// V-wide vector load per row; V = 1 for unaligned inputs), rows [blockIdx.y · chunk, +chunk) split
// over the kColLanes row lanes; partials meet in shared memory (summed in lane order), then the
// block's sum goes to row blockIdx.y of partials (gridDim.y, n) for add_partials. T: float or bf16.
template <typename T, int V>
__global__ void column_sum_kernel(float* __restrict__ partials, const T* __restrict__ in,
                                  int64_t rows, int64_t n, int64_t chunk) {
  constexpr int kTileCols = kColTile * V;
  __shared__ float part[kColLanes][kTileCols + 1];
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kTileCols;
  const int64_t c = c0 + static_cast<int64_t>(threadIdx.x) * V;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t r1 = min(rows, r0 + chunk);
  float s[V] = {};
  if (c < n) {  // n % V == 0: the whole vector is in range
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColLanes) {
      if constexpr (V == 1) {
        s[0] += to_float(in[r * n + c]);
      } else {
        const uint4 u = *reinterpret_cast<const uint4*>(in + r * n + c);  // V elements
        const T* e = reinterpret_cast<const T*>(&u);
#pragma unroll
        for (int k = 0; k < V; ++k) s[k] += to_float(e[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) part[threadIdx.y][threadIdx.x * V + k] = s[k];
  __syncthreads();
  for (int t = threadIdx.y * kColTile + threadIdx.x; t < kTileCols; t += kColTile * kColLanes) {
    if (c0 + t >= n) break;
    float sum = 0.0f;
    for (int l = 0; l < kColLanes; ++l) sum += part[l][t];
    partials[static_cast<int64_t>(blockIdx.y) * n + c0 + t] = sum;
  }
}

// One thread per element of out (items, g², k·k·C).
__global__ void space_to_channel_kernel(float* __restrict__ out, const float* __restrict__ x,
                                        int64_t items, int64_t side, int64_t cols, int64_t factor) {
  const int64_t g = (side + factor - 1) / factor, kk = factor * factor;
  const int64_t total = items * g * g * kk * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = idx % cols, t = idx / cols;
    const int64_t q = t % kk, cell = t / kk;  // q = dr·k + dc; cell = (item, i, j)
    const int64_t j = cell % g, i = (cell / g) % g, item = cell / (g * g);
    const int64_t r = factor * i + q / factor, col = factor * j + q % factor;
    out[idx] = r < side && col < side ? x[((item * side + r) * side + col) * cols + c] : 0.0f;
  }
}

// One thread per element of dx (items, s·s, C): every one written, padding dropped.
__global__ void space_to_channel_backward_kernel(float* __restrict__ dx,
                                                 const float* __restrict__ dout, int64_t items,
                                                 int64_t side, int64_t cols, int64_t factor) {
  const int64_t g = (side + factor - 1) / factor;
  const int64_t total = items * side * side * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = idx % cols, t = idx / cols;
    const int64_t col = t % side, r = (t / side) % side, item = t / (side * side);
    const int64_t cell = (item * g + r / factor) * g + col / factor;
    const int64_t q = (r % factor) * factor + col % factor;
    dx[idx] = dout[(cell * factor * factor + q) * cols + c];
  }
}

__global__ void splice_rows_kernel(float* __restrict__ x, const float* __restrict__ feats,
                                   const int32_t* __restrict__ rows, int64_t n, int64_t cols) {
  const int64_t total = n * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / cols, c = idx % cols;
    x[static_cast<int64_t>(rows[i]) * cols + c] = feats[idx];
  }
}

// Rows are distinct, so each dx element is read and zeroed by one thread.
__global__ void splice_rows_backward_kernel(float* __restrict__ dfeats, float* __restrict__ dx,
                                            const int32_t* __restrict__ rows, int64_t n,
                                            int64_t cols) {
  const int64_t total = n * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / cols, c = idx % cols;
    float* src = dx + static_cast<int64_t>(rows[i]) * cols + c;
    dfeats[idx] = *src;
    *src = 0.0f;
  }
}

unsigned grid_for(int64_t total) {
  return static_cast<unsigned>(
      std::min<int64_t>(std::max<int64_t>(ceil_div(total, kThreads), 1), kMaxGridX * 16));
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Streaming multiprocessors of the current device (grid sizing; 1 if the query fails).
int sm_count() {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    return 1;
  }
  return std::max(sms, 1);
}

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The register LayerNorm kernels take rows of up to kLnMaxRegCols columns, a multiple of 4, with
// the fp32 operands 16-byte aligned (and y 8-byte aligned).
bool ln_register_path(int64_t rows, int64_t cols, std::initializer_list<const void*> f32,
                      const void* y) {
  if (cols > kLnMaxRegCols || cols % kF32Vec != 0 || rows > INT_MAX) return false;
  for (const void* p : f32) {
    if (!aligned(p, sizeof(float4))) return false;
  }
  return aligned(y, sizeof(uint2));
}

Status need(const char* op, const char* name, const void* p) {
  if (p != nullptr) return ok_status();
  return invalid_argument(std::string(op) + ": " + name + " is null");
}

// value >= min, else InvalidArgument naming the op, the argument and the value.
Status at_least(const char* op, const char* name, int64_t value, int64_t min) {
  if (value >= min) return ok_status();
  return invalid_argument(std::string(op) + ": " + name + " " + std::to_string(value) +
                          " (need >= " + std::to_string(min) + ")");
}

Status launched() {
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace

Status train_layer_norm_forward(void* y, float* mean, float* rstd, const float* x, const float* w,
                                const float* b, int64_t rows, int64_t cols, float eps,
                                void* stream) {
  constexpr const char* kOp = "train_layer_norm_forward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "rows", rows, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  const int64_t blocks = ceil_div(rows, int64_t{kWarpsPerBlock});
  if (blocks > INT_MAX) return invalid_argument(std::string(kOp) + ": too many rows");
  if (rows == 0) return ok_status();
  for (auto [name, p] : {std::pair<const char*, const void*>{"y", y},
                         {"mean", mean},
                         {"rstd", rstd},
                         {"x", x},
                         {"w", w}}) {
    VILA_RETURN_IF_ERROR(need(kOp, name, p));
  }
  if (ln_register_path(rows, cols, {x, w, b}, y)) {
    layer_norm_forward_reg_kernel<<<static_cast<unsigned>(blocks), kThreads, 0,
                                    as_stream(stream)>>>(static_cast<bf16*>(y), mean, rstd, x, w, b,
                                                         static_cast<int>(rows),
                                                         static_cast<int>(cols), eps);
    return launched();
  }
  layer_norm_forward_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(y), mean, rstd, x, w, b, rows, cols, eps);
  return launched();
}

Status train_layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                                 const float* w, const float* mean, const float* rstd, int64_t rows,
                                 int64_t cols, bool accumulate, void* stream, void* dx16) {
  constexpr const char* kOp = "train_layer_norm_backward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "rows", rows, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  if (cols > kMaxLnCols) {
    return invalid_argument(std::string(kOp) + ": cols " + std::to_string(cols) + " > " +
                            std::to_string(kMaxLnCols));
  }
  if (ceil_div(rows, int64_t{kLnMaxRowsPerBlock}) > INT_MAX) {
    return invalid_argument(std::string(kOp) + ": too many rows");
  }
  if (dx16 != nullptr && (dx == nullptr || reinterpret_cast<uintptr_t>(dx16) % 8 != 0)) {
    return invalid_argument(std::string(kOp) + ": dx16 needs dx and 8-byte alignment");
  }
  if (rows == 0 || (dx == nullptr && dw == nullptr && db == nullptr)) return ok_status();
  for (auto [name, p] : {std::pair<const char*, const void*>{"dy", dy},
                         {"x", x},
                         {"w", w},
                         {"mean", mean},
                         {"rstd", rstd}}) {
    VILA_RETURN_IF_ERROR(need(kOp, name, p));
  }
  const size_t shared = 2 * static_cast<size_t>(cols) * sizeof(float);  // dw, db partials
  const int sms = sm_count();
  // dw, db: each warp (register path) or block (fallback) writes its partial rows to a (groups, C)
  // dw plane and a db plane, summed in group order (partials.h): reproducible, no atomics.
  const auto finish = [&](float* partials, int64_t groups) -> Status {
    VILA_RETURN_IF_ERROR(launched());
    if (dw != nullptr) VILA_RETURN_IF_ERROR(add_partials(dw, partials, groups, cols, true, stream));
    if (db != nullptr) {
      VILA_RETURN_IF_ERROR(add_partials(db, partials + groups * cols, groups, cols, true, stream));
    }
    return ok_status();
  };
  if (ln_register_path(rows, cols, {x, dy, w, dx}, nullptr)) {
    // One resident block per SM (register-bound); every warp walks rows / (SMs · 8) rows.
    const int64_t blocks = std::min<int64_t>(ceil_div(rows, int64_t{kWarpsPerBlock}), sms);
    const int64_t groups = blocks;
    VILA_ASSIGN_OR_RETURN(void* ws, partials_workspace(2 * groups * cols * sizeof(float)));
    auto* partials = static_cast<float*>(ws);
    const size_t warp_shared = kWarpsPerBlock * shared;  // every warp's dw, db partials
    if (warp_shared > 48 * 1024) {
      VILA_CUDA_CHECK(cudaFuncSetAttribute(layer_norm_backward_reg_kernel,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(warp_shared)));
    }
    layer_norm_backward_reg_kernel<<<static_cast<unsigned>(blocks), kThreads, warp_shared,
                                     as_stream(stream)>>>(
        dx, dw, db, dy, x, w, mean, rstd, static_cast<int>(rows), static_cast<int>(cols),
        accumulate, static_cast<bf16*>(dx16), partials);
    return finish(partials, groups);
  }
  if (shared > 48 * 1024) {
    VILA_CUDA_CHECK(cudaFuncSetAttribute(layer_norm_backward_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(shared)));
  }
  // Enough blocks to fill the GPU twice over, at most kLnMaxRowsPerBlock rows each.
  const auto rows_per_block = static_cast<int>(
      std::clamp<int64_t>(ceil_div(rows, int64_t{2} * sms), 1, int64_t{kLnMaxRowsPerBlock}));
  const int64_t blocks = ceil_div(rows, int64_t{rows_per_block});
  VILA_ASSIGN_OR_RETURN(void* ws, partials_workspace(2 * blocks * cols * sizeof(float)));
  auto* partials = static_cast<float*>(ws);
  layer_norm_backward_kernel<<<static_cast<unsigned>(blocks), kThreads, shared,
                               as_stream(stream)>>>(dx, dw, db, dy, x, w, mean, rstd, rows, cols,
                                                    rows_per_block, accumulate,
                                                    static_cast<bf16*>(dx16), partials);
  return finish(partials, blocks);
}

Status train_gelu_forward(void* y, const void* x, int64_t n, TrainGelu kind, void* stream) {
  constexpr const char* kOp = "train_gelu_forward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n", n, 0));
  if (n == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "y", y));
  VILA_RETURN_IF_ERROR(need(kOp, "x", x));
  const bool vec = aligned(y, sizeof(uint4)) && aligned(x, sizeof(uint4));
  gelu_forward_kernel<<<grid_for(vec ? ceil_div(n, int64_t{kBf16Vec}) : n), kThreads, 0,
                        as_stream(stream)>>>(static_cast<bf16*>(y), static_cast<const bf16*>(x), n,
                                             kind == TrainGelu::kTanh, vec);
  return launched();
}

Status train_gelu_backward(void* dx, const void* dy, const void* x, int64_t n, TrainGelu kind,
                           void* stream) {
  constexpr const char* kOp = "train_gelu_backward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n", n, 0));
  if (n == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "dx", dx));
  VILA_RETURN_IF_ERROR(need(kOp, "dy", dy));
  VILA_RETURN_IF_ERROR(need(kOp, "x", x));
  const bool vec =
      aligned(dx, sizeof(uint4)) && aligned(dy, sizeof(uint4)) && aligned(x, sizeof(uint4));
  gelu_backward_kernel<<<grid_for(vec ? ceil_div(n, int64_t{kBf16Vec}) : n), kThreads, 0,
                         as_stream(stream)>>>(static_cast<bf16*>(dx), static_cast<const bf16*>(dy),
                                              static_cast<const bf16*>(x), n,
                                              kind == TrainGelu::kTanh, vec);
  return launched();
}

Status train_patch_im2col(void* cols, const float* pixels, int64_t n_images, int64_t channels,
                          int64_t image_size, int64_t patch, void* stream) {
  constexpr const char* kOp = "train_patch_im2col";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n_images", n_images, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "channels", channels, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "patch", patch, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "image_size", image_size, patch));
  if (n_images == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "cols", cols));
  VILA_RETURN_IF_ERROR(need(kOp, "pixels", pixels));
  const int64_t grid = image_size / patch;
  const int64_t total = n_images * grid * grid * channels * patch * patch;
  patch_im2col_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(cols), pixels, n_images, channels, image_size, patch);
  return launched();
}

Status train_add_position(float* x, const float* pos, int64_t n_images, int64_t tokens,
                          int64_t cols, void* stream) {
  constexpr const char* kOp = "train_add_position";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n_images", n_images, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "tokens", tokens, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  if (n_images == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "x", x));
  VILA_RETURN_IF_ERROR(need(kOp, "pos", pos));
  const int64_t total = n_images * tokens * cols;
  add_position_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(x, pos, total,
                                                                           tokens * cols);
  return launched();
}

Status train_position_backward(float* dpos, const float* dx, int64_t n_images, int64_t tokens,
                               int64_t cols, void* stream) {
  constexpr const char* kOp = "train_position_backward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n_images", n_images, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "tokens", tokens, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  if (n_images == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "dpos", dpos));
  VILA_RETURN_IF_ERROR(need(kOp, "dx", dx));
  const int64_t per_image = tokens * cols;
  position_backward_kernel<<<grid_for(per_image), kThreads, 0, as_stream(stream)>>>(
      dpos, dx, n_images, per_image);
  return launched();
}

template <typename T>
Status column_sum(const char* op, float* out, const T* in, int64_t rows, int64_t n, void* stream) {
  VILA_RETURN_IF_ERROR(at_least(op, "rows", rows, 0));
  VILA_RETURN_IF_ERROR(at_least(op, "n", n, 1));
  if (rows == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(op, "out", out));
  VILA_RETURN_IF_ERROR(need(op, "in", in));
  if (ceil_div(n, int64_t{kColTile}) > INT_MAX) {
    return invalid_argument(std::string(op) + ": n too large");
  }
  constexpr int kVec = static_cast<int>(sizeof(uint4) / sizeof(T));  // per 16-byte load
  const bool vec = n % kVec == 0 && aligned(in, sizeof(uint4));
  const int64_t tiles = ceil_div(n, int64_t{kColTile} * (vec ? kVec : 1));
  // Row chunks: enough blocks for kWavesPerSm per SM, at least kColMinChunk rows each.
  const int64_t want_y = ceil_div(int64_t{kWavesPerSm} * sm_count(), tiles);
  const int64_t chunk =
      std::max({kColMinChunk, ceil_div(rows, want_y), ceil_div(rows, int64_t{kMaxGridY})});
  const int64_t groups = ceil_div(rows, chunk);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(groups));
  const dim3 block(kColTile, kColLanes);
  VILA_ASSIGN_OR_RETURN(void* ws, partials_workspace(groups * n * sizeof(float)));
  auto* partials = static_cast<float*>(ws);  // (groups, n): summed in order below, no atomics
  if (vec) {
    column_sum_kernel<T, kVec><<<grid, block, 0, as_stream(stream)>>>(partials, in, rows, n, chunk);
  } else {
    column_sum_kernel<T, 1><<<grid, block, 0, as_stream(stream)>>>(partials, in, rows, n, chunk);
  }
  VILA_RETURN_IF_ERROR(launched());
  return add_partials(out, partials, groups, n, true, stream);
}

Status train_column_sum_add_f32(float* out, const float* in, int64_t rows, int64_t n,
                                void* stream) {
  return column_sum("train_column_sum_add_f32", out, in, rows, n, stream);
}

Status train_column_sum_add(float* out, const void* in, int64_t rows, int64_t n, void* stream) {
  return column_sum("train_column_sum_add", out, static_cast<const bf16*>(in), rows, n, stream);
}

Status train_space_to_channel(float* out, const float* x, int64_t items, int64_t side, int64_t cols,
                              int64_t factor, void* stream) {
  constexpr const char* kOp = "train_space_to_channel";
  VILA_RETURN_IF_ERROR(at_least(kOp, "items", items, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "side", side, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "factor", factor, 1));
  if (items == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "out", out));
  VILA_RETURN_IF_ERROR(need(kOp, "x", x));
  const int64_t g = ceil_div(side, factor);
  const int64_t total = items * g * g * factor * factor * cols;
  space_to_channel_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(out, x, items, side,
                                                                               cols, factor);
  return launched();
}

Status train_space_to_channel_backward(float* dx, const float* dout, int64_t items, int64_t side,
                                       int64_t cols, int64_t factor, void* stream) {
  constexpr const char* kOp = "train_space_to_channel_backward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "items", items, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "side", side, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  VILA_RETURN_IF_ERROR(at_least(kOp, "factor", factor, 1));
  if (items == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "dx", dx));
  VILA_RETURN_IF_ERROR(need(kOp, "dout", dout));
  const int64_t total = items * side * side * cols;
  space_to_channel_backward_kernel<<<grid_for(total), kThreads, 0, as_stream(stream)>>>(
      dx, dout, items, side, cols, factor);
  return launched();
}

Status train_splice_rows(float* x, const float* feats, const int32_t* rows, int64_t n, int64_t cols,
                         void* stream) {
  constexpr const char* kOp = "train_splice_rows";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n", n, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  if (n == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "x", x));
  VILA_RETURN_IF_ERROR(need(kOp, "feats", feats));
  VILA_RETURN_IF_ERROR(need(kOp, "rows", rows));
  splice_rows_kernel<<<grid_for(n * cols), kThreads, 0, as_stream(stream)>>>(x, feats, rows, n,
                                                                             cols);
  return launched();
}

Status train_splice_rows_backward(float* dfeats, float* dx, const int32_t* rows, int64_t n,
                                  int64_t cols, void* stream) {
  constexpr const char* kOp = "train_splice_rows_backward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n", n, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  if (n == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "dfeats", dfeats));
  VILA_RETURN_IF_ERROR(need(kOp, "dx", dx));
  VILA_RETURN_IF_ERROR(need(kOp, "rows", rows));
  splice_rows_backward_kernel<<<grid_for(n * cols), kThreads, 0, as_stream(stream)>>>(
      dfeats, dx, rows, n, cols);
  return launched();
}

}  // namespace vila::cuda
