// Vision-path kernels (see vision_ops.h for the contracts and formulas). All are memory-bound
// gathers or elementwise maps: one thread per output element in a grid-stride loop, output index
// decomposed innermost-channel-first so that consecutive threads write consecutive addresses and
// read consecutive channels. The S2 merge instead runs one CTA per output row part, so that the
// area window is computed once for all of its channels.
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/vision_ops.h"

namespace vila::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kS2Threads = 128;  // s2_merge: threads of one CTA walking the channels
constexpr int64_t kMaxBlocks = int64_t{1} << 16;  // grid-stride loops cover the rest
constexpr float kSqrtHalf = 0.70710678118654752440f;
constexpr float kGeluTanhBeta = 0.79788456080286535588f;  // sqrt(2/pi)
constexpr float kGeluTanhKappa = 0.044715f;

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min((n + kThreads - 1) / kThreads, kMaxBlocks));
}

__device__ __forceinline__ int64_t global_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ---- kernels ----

// cols (batch*grid², col_stride) T from pixels of type P (float, or T itself); one thread per
// column entry.
template <typename T, typename P>
__global__ void im2col_kernel(T* __restrict__ cols, const P* __restrict__ pixels,
                              int64_t col_stride, int64_t n, int64_t cin, int64_t size,
                              int64_t patch, int64_t grid) {
  const int64_t k = cin * patch * patch, patches = grid * grid;
  for (int64_t idx = global_index(); idx < n; idx += grid_stride()) {
    const int64_t col = idx % col_stride, row = idx / col_stride;
    float v = 0.0f;
    if (col < k) {
      const int64_t ci = col / (patch * patch), in_patch = col % (patch * patch);
      const int64_t ky = in_patch / patch, kx = in_patch % patch;
      const int64_t b = row / patches, p = row % patches;
      const int64_t py = p / grid, px = p % grid;
      v = to_float(pixels[((b * cin + ci) * size + py * patch + ky) * size + px * patch + kx]);
    }
    cols[idx] = from_float<T>(v);
  }
}

// x (batch, tokens*channels) += pos (tokens*channels).
__global__ void add_position_kernel(float* __restrict__ x, const float* __restrict__ pos, int64_t n,
                                    int64_t per_tile) {
  for (int64_t idx = global_index(); idx < n; idx += grid_stride()) x[idx] += pos[idx % per_tile];
}

template <typename T>
__global__ void gelu_bias_kernel(T* out, const float* in, const float* __restrict__ bias, int64_t n,
                                 int64_t cols, bool tanh_approx) {
  for (int64_t idx = global_index(); idx < n; idx += grid_stride()) {
    const float v = bias != nullptr ? in[idx] + bias[idx % cols] : in[idx];
    float y;
    if (tanh_approx) {
      const float inner = kGeluTanhBeta * (v + kGeluTanhKappa * (v * v * v));
      y = 0.5f * v * (1.0f + tanhf(inner));
    } else {
      y = 0.5f * v * (1.0f + erff(v * kSqrtHalf));
    }
    out[idx] = from_float<T>(y);
  }
}

// out (items, g², k²C); one thread per output value.
template <typename T>
__global__ void spatial_to_channel_kernel(T* __restrict__ out, const float* __restrict__ in,
                                          int64_t n, int64_t item_stride, int64_t first_token,
                                          int64_t side, int64_t channels, int64_t factor,
                                          int64_t g) {
  for (int64_t idx = global_index(); idx < n; idx += grid_stride()) {
    const int64_t c = idx % channels;
    int64_t rest = idx / channels;
    const int64_t sub = rest % (factor * factor);  // dr * k + dc
    rest /= factor * factor;
    const int64_t token = rest % (g * g), item = rest / (g * g);
    const int64_t r = factor * (token / g) + sub / factor;
    const int64_t col = factor * (token % g) + sub % factor;
    float v = 0.0f;  // zero padding beyond the grid
    if (r < side && col < side) {
      v = in[(item * item_stride + first_token + r * side + col) * channels + c];
    }
    out[idx] = from_float<T>(v);
  }
}

// out (items, tokens, repeat*C).
template <typename T>
__global__ void gather_tokens_kernel(T* __restrict__ out, const float* __restrict__ in, int64_t n,
                                     int64_t item_stride, int64_t first_token, int64_t tokens,
                                     int64_t channels, int64_t repeat) {
  for (int64_t idx = global_index(); idx < n; idx += grid_stride()) {
    const int64_t c = idx % channels;
    const int64_t row = idx / channels / repeat;  // item * tokens + t
    const int64_t t = row % tokens, item = row / tokens;
    out[idx] = from_float<T>(in[(item * item_stride + first_token + t) * channels + c]);
  }
}

// The S2 merge in 32-bit index arithmetic (launcher-checked bounds), passed by value.
struct S2Params {
  const float* features;
  float* out;
  int item_stride, first_token, g, channels, n_scales, factor, sub_g;  // sub_g: G = ceil(g/k)
  int out_rows, out_cols, out_h, out_w;  // block grid; resized map (out_rows*g, out_cols*g)
  int raster;
  int grid_h[kMaxS2Scales], grid_w[kMaxS2Scales], tile_base[kMaxS2Scales];
};

// One CTA per (output row, part): blockIdx.x = row, blockIdx.y = part = sub * K + scale, sub =
// dr * k + dc. Output columns [part * C, (part + 1) * C) of the row; VEC channels per access.
template <int VEC>
__global__ void s2_merge_kernel(S2Params p) {
  using Vec = typename std::conditional<VEC == 4, float4, float>::type;
  const int row = blockIdx.x, part = blockIdx.y;
  const int scale = part % p.n_scales, sub = part / p.n_scales;
  const int G = p.sub_g, bgrid_w = p.out_cols * G;
  int block, token;  // block of the resize scale's grid, token i * G + j in it
  if (p.raster) {
    const int r = row / bgrid_w, c = row % bgrid_w;
    block = (r / G) * p.out_cols + c / G;
    token = (r % G) * G + c % G;
  } else {
    block = row / (G * G);
    token = row % (G * G);
  }
  const int pr = p.factor * (token / G) + sub / p.factor;  // position in the block
  const int pc = p.factor * (token % G) + sub % p.factor;
  const int C = p.channels, cvec = C / VEC;
  Vec* out = reinterpret_cast<Vec*>(p.out + (static_cast<int64_t>(row) * gridDim.y + part) * C);
  if (pr >= p.g || pc >= p.g) {  // spatial-to-channel padding
    for (int v = threadIdx.x; v < cvec; v += blockDim.x) {
      if constexpr (VEC == 4) {
        out[v] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      } else {
        out[v] = 0.0f;
      }
    }
    return;
  }
  const int oh = (block / p.out_cols) * p.g + pr, ow = (block % p.out_cols) * p.g + pc;
  const int grid_w = p.grid_w[scale], in_h = p.grid_h[scale] * p.g, in_w = grid_w * p.g;
  const int ih0 = oh * in_h / p.out_h, ih1 = ((oh + 1) * in_h + p.out_h - 1) / p.out_h;
  const int iw0 = ow * in_w / p.out_w, iw1 = ((ow + 1) * in_w + p.out_w - 1) / p.out_w;
  const float kh = static_cast<float>(ih1 - ih0), kw = static_cast<float>(iw1 - iw0);
  for (int v = threadIdx.x; v < cvec; v += blockDim.x) {
    Vec sum;
    if constexpr (VEC == 4) {
      sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    } else {
      sum = 0.0f;
    }
    for (int ih = ih0; ih < ih1; ++ih) {
      for (int iw = iw0; iw < iw1; ++iw) {
        const int tile = p.tile_base[scale] + (ih / p.g) * grid_w + iw / p.g;
        const int t = (ih % p.g) * p.g + iw % p.g;
        const Vec x = reinterpret_cast<const Vec*>(
            p.features + (static_cast<int64_t>(tile) * p.item_stride + p.first_token + t) * C)[v];
        if constexpr (VEC == 4) {
          sum.x += x.x;
          sum.y += x.y;
          sum.z += x.z;
          sum.w += x.w;
        } else {
          sum += x;
        }
      }
    }
    if constexpr (VEC == 4) {
      out[v] = make_float4(sum.x / kh / kw, sum.y / kh / kw, sum.z / kh / kw, sum.w / kh / kw);
    } else {
      out[v] = sum / kh / kw;
    }
  }
}

// map (n_h*g, n_w*g, C).
__global__ void merge_chessboard_kernel(float* __restrict__ map, const float* __restrict__ tiles,
                                        int64_t n, int64_t n_w, int64_t g, int64_t channels) {
  const int64_t map_w = n_w * g;
  for (int64_t idx = global_index(); idx < n; idx += grid_stride()) {
    const int64_t c = idx % channels, pixel = idx / channels;
    const int64_t row = pixel / map_w, col = pixel % map_w;
    const int64_t tile = (row / g) * n_w + col / g;
    map[idx] = tiles[(tile * g * g + (row % g) * g + col % g) * channels + c];
  }
}

// Calls launch(T{}) with T the element type of `dtype` (float, __nv_bfloat16 or __half).
template <typename Launch>
Status dispatch_out(DType dtype, const char* what, Launch&& launch) {
  switch (dtype) {
    case DType::kF32:
      launch(float{});
      break;
    case DType::kBF16:
      launch(__nv_bfloat16{});
      break;
    case DType::kF16:
      launch(__half{});
      break;
    default:
      return unimplemented(std::string(what) + ": out dtype " + dtype_name(dtype) +
                           " (supported: f32, bf16, f16)");
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status check_items(const char* what, const void* out, const float* in, int64_t items,
                   int64_t item_stride, int64_t first_token, int64_t tokens, int64_t channels) {
  if (items < 0 || tokens <= 0 || channels <= 0 || first_token < 0 ||
      first_token + tokens > item_stride) {
    return invalid_argument(std::string(what) + ": bad shape items " + std::to_string(items) +
                            ", item_stride " + std::to_string(item_stride) + ", first_token " +
                            std::to_string(first_token) + ", tokens " + std::to_string(tokens) +
                            ", channels " + std::to_string(channels));
  }
  if (items > 0 && (out == nullptr || in == nullptr)) {
    return invalid_argument(std::string(what) + ": null out or in");
  }
  return ok_status();
}

}  // namespace

// ---- launchers ----

Status im2col_patches(void* cols, DType dtype, int64_t col_stride, const void* pixels,
                      DType pixel_dtype, int64_t batch, int64_t cin, int64_t size, int64_t patch,
                      void* stream) {
  if (batch < 0 || cin <= 0 || patch <= 0 || size < patch || col_stride < cin * patch * patch) {
    return invalid_argument("im2col_patches: bad shape batch " + std::to_string(batch) + ", cin " +
                            std::to_string(cin) + ", size " + std::to_string(size) + ", patch " +
                            std::to_string(patch) + ", col_stride " + std::to_string(col_stride));
  }
  if (dtype != DType::kBF16 && dtype != DType::kF16) {
    return unimplemented(std::string("im2col_patches: dtype ") + dtype_name(dtype) +
                         " (supported: bf16, f16)");
  }
  if (pixel_dtype != DType::kF32 && pixel_dtype != dtype) {
    return unimplemented(std::string("im2col_patches: ") + dtype_name(pixel_dtype) +
                         " pixels for " + dtype_name(dtype) + " columns (f32 or the same dtype)");
  }
  const int64_t grid = size / patch, n = batch * grid * grid * col_stride;
  if (n == 0) return ok_status();
  if (cols == nullptr || pixels == nullptr) {
    return invalid_argument("im2col_patches: null cols or pixels");
  }
  return dispatch_out(dtype, "im2col_patches", [&](auto tag) {
    using T = decltype(tag);
    const auto s = static_cast<cudaStream_t>(stream);
    if (pixel_dtype == DType::kF32) {
      im2col_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(cols),
                                                          static_cast<const float*>(pixels),
                                                          col_stride, n, cin, size, patch, grid);
    } else {
      im2col_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(cols),
                                                          static_cast<const T*>(pixels), col_stride,
                                                          n, cin, size, patch, grid);
    }
  });
}

Status add_position_embeddings(float* x, const float* pos, int64_t batch, int64_t tokens,
                               int64_t channels, void* stream) {
  if (batch < 0 || tokens <= 0 || channels <= 0) {
    return invalid_argument("add_position_embeddings: bad shape batch " + std::to_string(batch) +
                            ", tokens " + std::to_string(tokens) + ", channels " +
                            std::to_string(channels));
  }
  const int64_t per_tile = tokens * channels, n = batch * per_tile;
  if (n == 0) return ok_status();
  if (x == nullptr || pos == nullptr) {
    return invalid_argument("add_position_embeddings: null x or pos");
  }
  add_position_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, pos, n,
                                                                                         per_tile);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status gelu_bias(void* out, DType out_dtype, const float* in, const float* bias, int64_t rows,
                 int64_t cols, bool tanh_approx, void* stream) {
  if (rows < 0 || cols <= 0) {
    return invalid_argument("gelu_bias: bad shape rows " + std::to_string(rows) + ", cols " +
                            std::to_string(cols));
  }
  const int64_t n = rows * cols;
  if (n == 0) return ok_status();
  if (out == nullptr || in == nullptr) return invalid_argument("gelu_bias: null out or in");
  if (out_dtype != DType::kF32 && out == static_cast<const void*>(in)) {
    return invalid_argument("gelu_bias: a 16-bit out must not alias in");
  }
  return dispatch_out(out_dtype, "gelu_bias", [&](auto tag) {
    using T = decltype(tag);
    gelu_bias_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(out), in, bias, n, cols, tanh_approx);
  });
}

Status spatial_to_channel(void* out, DType out_dtype, const float* in, int64_t items,
                          int64_t item_stride, int64_t first_token, int64_t side, int64_t channels,
                          int64_t factor, void* stream) {
  if (side <= 0 || factor <= 0) {
    return invalid_argument("spatial_to_channel: side " + std::to_string(side) + " and factor " +
                            std::to_string(factor) + " must be positive");
  }
  VILA_RETURN_IF_ERROR(check_items("spatial_to_channel", out, in, items, item_stride, first_token,
                                   side * side, channels));
  const int64_t g = (side + factor - 1) / factor;
  const int64_t n = items * g * g * factor * factor * channels;
  if (n == 0) return ok_status();
  return dispatch_out(out_dtype, "spatial_to_channel", [&](auto tag) {
    using T = decltype(tag);
    spatial_to_channel_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(out), in, n, item_stride, first_token, side, channels, factor, g);
  });
}

Status gather_tokens(void* out, DType out_dtype, const float* in, int64_t items,
                     int64_t item_stride, int64_t first_token, int64_t tokens, int64_t channels,
                     int64_t repeat, void* stream) {
  if (repeat <= 0) {
    return invalid_argument("gather_tokens: repeat " + std::to_string(repeat) +
                            " must be positive");
  }
  VILA_RETURN_IF_ERROR(
      check_items("gather_tokens", out, in, items, item_stride, first_token, tokens, channels));
  const int64_t n = items * tokens * repeat * channels;
  if (n == 0) return ok_status();
  return dispatch_out(out_dtype, "gather_tokens", [&](auto tag) {
    using T = decltype(tag);
    gather_tokens_kernel<T><<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<T*>(out), in, n, item_stride, first_token, tokens, channels, repeat);
  });
}

Status s2_merge_features(const S2MergeArgs& args, void* stream) {
  if (args.n_scales <= 0 || args.n_scales > kMaxS2Scales || args.g <= 0 || args.channels <= 0 ||
      args.out_rows <= 0 || args.out_cols <= 0 || args.first_token < 0 || args.factor <= 0 ||
      args.first_token + args.g * args.g > args.item_stride) {
    return invalid_argument(
        "s2_merge_features: bad arguments (n_scales " + std::to_string(args.n_scales) + ", g " +
        std::to_string(args.g) + ", channels " + std::to_string(args.channels) + ", block grid " +
        std::to_string(args.out_rows) + "x" + std::to_string(args.out_cols) + ", item_stride " +
        std::to_string(args.item_stride) + ", first_token " + std::to_string(args.first_token) +
        ", factor " + std::to_string(args.factor) + ")");
  }
  S2Params p{};
  int64_t tiles = 0, widest = 0;  // all tiles; widest resize input
  for (int s = 0; s < args.n_scales; ++s) {
    if (args.grid_h[s] <= 0 || args.grid_w[s] <= 0) {
      return invalid_argument("s2_merge_features: scale " + std::to_string(s) + " has a " +
                              std::to_string(args.grid_h[s]) + "x" +
                              std::to_string(args.grid_w[s]) + " tile grid");
    }
    p.grid_h[s] = static_cast<int>(args.grid_h[s]);
    p.grid_w[s] = static_cast<int>(args.grid_w[s]);
    p.tile_base[s] = static_cast<int>(tiles);
    tiles += args.grid_h[s] * args.grid_w[s];
    widest = std::max(widest, std::max(args.grid_h[s], args.grid_w[s]) * args.g);
  }
  const int64_t G = (args.g + args.factor - 1) / args.factor;
  const int64_t rows = args.out_rows * args.out_cols * G * G;
  const int64_t parts = args.factor * args.factor * args.n_scales;
  const int64_t out_side = std::max(args.out_rows, args.out_cols) * args.g;
  // Everything in the kernel's 32-bit arithmetic: the window products (o + 1) * In, tile offsets.
  constexpr int64_t kInt32Max = 0x7fffffff, kMaxGridY = 65535;
  if (tiles * args.item_stride > kInt32Max || (out_side + 1) * widest > kInt32Max ||
      rows > kInt32Max || parts > kMaxGridY || args.channels > kInt32Max) {
    return invalid_argument("s2_merge_features: sizes beyond 32-bit indexing (" +
                            std::to_string(tiles) + " tiles, map side " + std::to_string(out_side) +
                            ")");
  }
  if (args.out == nullptr || args.features == nullptr) {
    return invalid_argument("s2_merge_features: null out or features");
  }
  p.features = args.features;
  p.out = args.out;
  p.item_stride = static_cast<int>(args.item_stride);
  p.first_token = static_cast<int>(args.first_token);
  p.g = static_cast<int>(args.g);
  p.channels = static_cast<int>(args.channels);
  p.n_scales = args.n_scales;
  p.factor = static_cast<int>(args.factor);
  p.sub_g = static_cast<int>(G);
  p.out_rows = static_cast<int>(args.out_rows);
  p.out_cols = static_cast<int>(args.out_cols);
  p.out_h = static_cast<int>(args.out_rows * args.g);
  p.out_w = static_cast<int>(args.out_cols * args.g);
  p.raster = args.raster ? 1 : 0;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(parts));
  const auto s = static_cast<cudaStream_t>(stream);
  const bool vec4 = args.channels % 4 == 0 && reinterpret_cast<uintptr_t>(args.out) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(args.features) % 16 == 0;
  if (vec4) {
    s2_merge_kernel<4><<<grid, kS2Threads, 0, s>>>(p);
  } else {
    s2_merge_kernel<1><<<grid, kS2Threads, 0, s>>>(p);
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status merge_chessboard(float* map, const float* tiles, int64_t n_h, int64_t n_w, int64_t g,
                        int64_t channels, void* stream) {
  if (n_h < 0 || n_w < 0 || g <= 0 || channels <= 0) {
    return invalid_argument("merge_chessboard: bad shape " + std::to_string(n_h) + "x" +
                            std::to_string(n_w) + " tiles, g " + std::to_string(g) + ", channels " +
                            std::to_string(channels));
  }
  const int64_t n = n_h * n_w * g * g * channels;
  if (n == 0) return ok_status();
  if (map == nullptr || tiles == nullptr) return invalid_argument("merge_chessboard: null buffer");
  merge_chessboard_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      map, tiles, n, n_w, g, channels);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
