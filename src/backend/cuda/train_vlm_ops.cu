// Kernels of the VLM training step beyond the LLM (train_vlm_ops.h): LayerNorm forward / backward,
// GELU forward / backward, patch im2col, position embeddings, fp32 column sums, spatial-to-channel
// and the media splice. bf16 activations, fp32 math (double for the LayerNorm row statistics).
#include <algorithm>
#include <climits>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/train_vlm_ops.h"

namespace vila::cuda {

namespace {

using bf16 = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = kThreads / kWarp;  // LayerNorm forward: one warp per row
constexpr int kLnRowsPerBlock = 32;               // LayerNorm backward: rows per block
constexpr int64_t kMaxLnCols = 16384;  // dw / db partials live in shared memory (128 KiB)
constexpr int kMaxGridX = 65535;
constexpr int kColTile = 32;        // column sum: columns per block (one per lane)
constexpr int kColLanes = 8;        // column sum: row lanes per block
constexpr int64_t kColChunk = 512;  // column sum: rows per block (at least)
constexpr int kMaxGridY = 65535;

// GELU constants (train/activation.cpp).
constexpr float kSqrtHalf = 0.70710678118654752440f;    // 1 / √2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;  // 1 / √(2π)
constexpr float kGeluBeta = 0.79788456080286535588f;    // √(2/π)
constexpr float kGeluKappa = 0.044715f;

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

// One warp per row: two passes for μ and the biased variance in double, a third for y.
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

// kLnRowsPerBlock rows per block of kThreads threads; thread t owns columns t, t + kThreads, ...
// of the dw / db partials in shared memory (no races), one atomicAdd per column at the end.
__global__ void layer_norm_backward_kernel(float* dx, float* __restrict__ dw,
                                           float* __restrict__ db, const float* __restrict__ dy,
                                           const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ mean,
                                           const float* __restrict__ rstd, int64_t rows,
                                           int64_t cols, bool accumulate) {
  extern __shared__ float partials[];  // dw (C) then db (C)
  __shared__ double red[2 * kWarpsPerBlock];
  float* dw_part = partials;
  float* db_part = partials + cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    dw_part[c] = 0.0f;
    db_part[c] = 0.0f;
  }
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kLnRowsPerBlock;
  const int64_t r1 = min(rows, r0 + kLnRowsPerBlock);
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
      dxr[c] = accumulate ? dxr[c] + v : v;
    }
  }
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    if (dw != nullptr) atomicAdd(dw + c, dw_part[c]);
    if (db != nullptr) atomicAdd(db + c, db_part[c]);
  }
}

__device__ __forceinline__ float gelu_value(float v, bool tanh_form) {
  if (tanh_form) return 0.5f * v * (1.0f + tanhf(kGeluBeta * (v + kGeluKappa * (v * v * v))));
  return 0.5f * v * (1.0f + erff(v * kSqrtHalf));
}

__device__ __forceinline__ float gelu_grad(float v, bool tanh_form) {
  if (tanh_form) {
    const float th = tanhf(kGeluBeta * (v + kGeluKappa * (v * v * v)));
    const float du = kGeluBeta * (1.0f + 3.0f * kGeluKappa * v * v);
    return 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du;
  }
  const float cdf = 0.5f * (1.0f + erff(v * kSqrtHalf));
  const float pdf = kInvSqrt2Pi * expf(-0.5f * v * v);
  return cdf + v * pdf;
}

__global__ void gelu_forward_kernel(bf16* __restrict__ y, const bf16* __restrict__ x, int64_t n,
                                    bool tanh_form) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = __float2bfloat16_rn(gelu_value(__bfloat162float(x[i]), tanh_form));
  }
}

// dx may alias dy: element i is read before it is written, by the same thread.
__global__ void gelu_backward_kernel(bf16* dx, const bf16* dy, const bf16* __restrict__ x,
                                     int64_t n, bool tanh_form) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
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

// Block (kColTile, kColLanes): columns blockIdx.x · kColTile + threadIdx.x, rows
// [blockIdx.y · chunk, +chunk) split over the kColLanes row lanes, then one atomicAdd per column.
// T: float or bf16 input.
template <typename T>
__global__ void column_sum_kernel(float* __restrict__ out, const T* __restrict__ in, int64_t rows,
                                  int64_t n, int64_t chunk) {
  __shared__ float part[kColLanes][kColTile + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t r1 = min(rows, r0 + chunk);
  float s = 0.0f;
  if (c < n) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColLanes) s += to_float(in[r * n + c]);
  }
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= n) return;
  for (int l = 1; l < kColLanes; ++l) s += part[l][threadIdx.x];
  atomicAdd(out + c, s);
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
  layer_norm_forward_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(y), mean, rstd, x, w, b, rows, cols, eps);
  return launched();
}

Status train_layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                                 const float* w, const float* mean, const float* rstd, int64_t rows,
                                 int64_t cols, bool accumulate, void* stream) {
  constexpr const char* kOp = "train_layer_norm_backward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "rows", rows, 0));
  VILA_RETURN_IF_ERROR(at_least(kOp, "cols", cols, 1));
  if (cols > kMaxLnCols) {
    return invalid_argument(std::string(kOp) + ": cols " + std::to_string(cols) + " > " +
                            std::to_string(kMaxLnCols));
  }
  const int64_t blocks = ceil_div(rows, int64_t{kLnRowsPerBlock});
  if (blocks > INT_MAX) return invalid_argument(std::string(kOp) + ": too many rows");
  if (rows == 0 || (dx == nullptr && dw == nullptr && db == nullptr)) return ok_status();
  for (auto [name, p] : {std::pair<const char*, const void*>{"dy", dy},
                         {"x", x},
                         {"w", w},
                         {"mean", mean},
                         {"rstd", rstd}}) {
    VILA_RETURN_IF_ERROR(need(kOp, name, p));
  }
  const size_t shared = 2 * static_cast<size_t>(cols) * sizeof(float);
  if (shared > 48 * 1024) {
    VILA_CUDA_CHECK(cudaFuncSetAttribute(layer_norm_backward_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(shared)));
  }
  layer_norm_backward_kernel<<<static_cast<unsigned>(blocks), kThreads, shared,
                               as_stream(stream)>>>(dx, dw, db, dy, x, w, mean, rstd, rows, cols,
                                                    accumulate);
  return launched();
}

Status train_gelu_forward(void* y, const void* x, int64_t n, TrainGelu kind, void* stream) {
  constexpr const char* kOp = "train_gelu_forward";
  VILA_RETURN_IF_ERROR(at_least(kOp, "n", n, 0));
  if (n == 0) return ok_status();
  VILA_RETURN_IF_ERROR(need(kOp, "y", y));
  VILA_RETURN_IF_ERROR(need(kOp, "x", x));
  gelu_forward_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(y), static_cast<const bf16*>(x), n, kind == TrainGelu::kTanh);
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
  gelu_backward_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(
      static_cast<bf16*>(dx), static_cast<const bf16*>(dy), static_cast<const bf16*>(x), n,
      kind == TrainGelu::kTanh);
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
  const int64_t tiles = ceil_div(n, int64_t{kColTile});
  if (tiles > INT_MAX) return invalid_argument(std::string(op) + ": n too large");
  const int64_t chunk = std::max(kColChunk, ceil_div(rows, int64_t{kMaxGridY}));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(ceil_div(rows, chunk)));
  column_sum_kernel<T>
      <<<grid, dim3(kColTile, kColLanes), 0, as_stream(stream)>>>(out, in, rows, n, chunk);
  return launched();
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
