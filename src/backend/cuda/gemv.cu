// Weight-streaming GEMV for decode (gemv.h): y (M, N) = x̂ (M, K) · W (N, K)ᵀ, M <= 8, on tensor
// cores (mma.sync m16n8k16, fp32 accumulation), with the prologue that forms x̂ and the epilogue
// that stores or adds y fused in.
//
// Launch: every block first issues its first tile of weight loads, then waits for the previous
// grid (griddepcontrol.wait; a no-op unless launched with programmatic_launch), so under PDL the
// weight stream starts while the previous kernel drains; x, norm_weight, bias and out are only
// touched after the wait. Each block also lets the next PDL grid launch right away.
//
// Work split. A block owns kRowTiles tiles of 16 output rows. Its warps form kRowTiles groups of
// kSplits warps; the warps of a group share the 16 rows and split K. K is walked in tiles of
// kTileK = kSplits * kSteps * 32 elements; for each tile the block
//   1. issues all its 16-byte weight loads for the tile into registers (2 * kSteps per thread),
//   2. forms x̂ for the tile (the prologue) in shared memory, rounded to the compute dtype, while
//      those loads are in flight (x̂ is double-buffered, so one barrier per tile suffices),
//   3. multiplies: per 32-k step, two mma.sync with A = 16 weight rows and B = x̂ of 8 input rows.
// At the end the kSplits partial (16 x 8) tiles of a group are summed in shared memory in a fixed
// order (no atomics) and the epilogue adds the bias and stores, or adds to the fp32 output. Four
// block shapes are compiled; choose_block_shape picks one from (M,
// N, K, prologue) as measured. out must not overlap x (blocks read x while others write out).
//
// Fragment mapping (g = lane / 4, c = lane % 4). A dot product does not care which physical k sits
// in which mma k slot as long as A and B agree, so each thread loads 8 consecutive k with one
// 16-byte load: W[row g][8c .. 8c+8), W[row g+8][8c .. 8c+8) and x̂[input row g][8c .. 8c+8). The
// mma's slots (k 2c, 2c+1 | 2c+8, 2c+9) of the first mma take physical k 8c+0,1 | 8c+2,3, those of
// the second 8c+4,5 | 8c+6,7. The accumulator holds rows g and g+8 for input rows 2c and 2c+1.
//
// The prologue formulas are those of rms_norm_to (rms_norm.cu) and silu_mul_to (elementwise.cu),
// operation for operation, so prefill and decode feed the GEMMs bit-identical x̂:
//   kRmsNorm   inv_rms = 1 / sqrt(float(Σ x² (in double) / K) + eps),  x̂ = round((x * inv_rms) * w)
//   kSiluGate  x̂ = round((g / (1 + expf(-g))) * u)
// (the sum of squares is accumulated in double, as the CPU rms_norm does; it is order-independent
// up to the final rounding to fp32, so the three implementations agree).
#include <atomic>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/gemv.h"

namespace vila::cuda {

namespace {

constexpr int kWarpSize = 32;
constexpr int kMmaRows = 16;                      // weight rows per mma (A rows)
constexpr int kMmaCols = 8;                       // input rows per mma (B columns) = kGemvMaxRows
constexpr int kChunk = 8;                         // 16-bit elements per 16-byte load
constexpr int kStepK = 4 * kChunk;                // k per warp step: 4 lanes x 8 elements = 2 mmas
constexpr int kXPad = kChunk;                     // x̂ row padding (elements): spreads the banks
constexpr int kAccPerWarp = kMmaRows * kMmaCols;  // partial outputs per warp
static_assert(kMmaCols == kGemvMaxRows, "one mma column per input row");

template <int kRowTiles_, int kSplits_, int kSteps_, int kMinBlocks_ = 1>
struct GemvConfig {
  static constexpr int kMinBlocks = kMinBlocks_;  // __launch_bounds__ blocks per SM
  static constexpr int kRowTiles = kRowTiles_;
  static constexpr int kSplits = kSplits_;
  static constexpr int kSteps = kSteps_;
  static constexpr int kWarps = kRowTiles * kSplits;
  static constexpr int kThreads = kWarps * kWarpSize;
  static constexpr int kRows = kRowTiles * kMmaRows;  // output rows per block
  static constexpr int kWarpK = kSteps * kStepK;      // k per warp per tile
  static constexpr int kTileK = kSplits * kWarpK;     // k per tile
  static constexpr int kXStride = kTileK + kXPad;     // x̂ row stride in shared memory (elements)
  static constexpr size_t kSmemBytes = 2 * kGemvMaxRows * kXStride * 2  // x̂, double-buffered
                                       + kWarps * kAccPerWarp * 4       // partial sums
                                       + kGemvMaxRows * 4;              // inv_rms
};

// ---- device helpers ----
__device__ __forceinline__ uint4 load_weights(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Programmatic dependent launch (PTX griddepcontrol, sm_90): wait for the previous grid on the
// stream (a no-op without a programmatic dependency), and let the next PDL grid launch.
__device__ __forceinline__ void wait_for_previous_grid() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
}
__device__ __forceinline__ void allow_next_grid() {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                          uint32_t a3, uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                         uint32_t a2, uint32_t a3, uint32_t b0,
                                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                  uint32_t a2, uint32_t a3, uint32_t b0,
                                                  uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 8 packed 16-bit values <-> 8 floats.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[kChunk]) {
  const T* h = reinterpret_cast<const T*>(&v);
#pragma unroll
  for (int i = 0; i < kChunk; ++i) f[i] = to_float(h[i]);
}
template <typename T>
__device__ __forceinline__ uint4 pack8(const float (&f)[kChunk]) {
  uint4 v;
  T* h = reinterpret_cast<T*>(&v);
#pragma unroll
  for (int i = 0; i < kChunk; ++i) h[i] = from_float<T>(f[i]);
  return v;
}

// The prologue formulas; rms_norm.cu and elementwise.cu use the same operations.
__device__ __forceinline__ float rms_inv_from_sum(double sum_sq, int64_t cols, float eps) {
  const auto variance = static_cast<float>(sum_sq / static_cast<double>(cols));
  return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(variance, eps)));
}
__device__ __forceinline__ float rms_scale(float x, float inv_rms, float w) {
  return __fmul_rn(__fmul_rn(x, inv_rms), w);
}
__device__ __forceinline__ float silu_gate(float g, float u) {
  return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

// inv_rms of each input row (kRmsNorm), in double: every warp sums its slice of K for every row
// (float4 f of a row goes to warp f % kWarps), the slices land in `slices` (kWarps x rows doubles)
// and thread m adds row m's slices in warp order. Ends with a barrier. All warps share the work so
// the first mma is not kept waiting behind one warp's serial loop over K.
template <int kWarps>
__device__ void row_inv_rms(const GemvArgs& a, float* inv_rms, double* slices) {
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  constexpr int kVec = 4;  // floats per float4
  for (int m = 0; m < a.rows; ++m) {
    const float* xr = static_cast<const float*>(a.x) + m * a.x_row_stride;  // (K) fp32
    double sum = 0.0;
    for (int64_t k = (int64_t{warp} * kWarpSize + lane) * kVec; k < a.k;
         k += kWarps * kWarpSize * kVec) {
      const float4 v = __ldg(reinterpret_cast<const float4*>(xr + k));
      sum = fma(static_cast<double>(v.x), static_cast<double>(v.x), sum);
      sum = fma(static_cast<double>(v.y), static_cast<double>(v.y), sum);
      sum = fma(static_cast<double>(v.z), static_cast<double>(v.z), sum);
      sum = fma(static_cast<double>(v.w), static_cast<double>(v.w), sum);
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    }
    if (lane == 0) slices[warp * kGemvMaxRows + m] = sum;
  }
  __syncthreads();
  if (threadIdx.x < a.rows) {
    double sum = 0.0;
    for (int w = 0; w < kWarps; ++w) sum += slices[w * kGemvMaxRows + threadIdx.x];
    inv_rms[threadIdx.x] = rms_inv_from_sum(sum, a.k, a.eps);
  }
  __syncthreads();
}

// x̂ (rows, kTileK) for k in [k0, k0 + kTileK) into xs (kGemvMaxRows, kXStride) compute dtype;
// columns past K are zero. One item = 8 consecutive k of one input row.
template <typename T, class Cfg>
__device__ void stage_xhat(const GemvArgs& a, T* xs, int64_t k0, const float* inv_rms) {
  constexpr int kChunksPerRow = Cfg::kTileK / kChunk;
  const int items = a.rows * kChunksPerRow;
  for (int item = threadIdx.x; item < items; item += Cfg::kThreads) {
    const int m = item / kChunksPerRow, chunk = item % kChunksPerRow;
    const int64_t k = k0 + int64_t{chunk} * kChunk;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (k < a.k) {
      if (a.prologue == GemvPrologue::kNone) {
        const T* xr = static_cast<const T*>(a.x) + m * a.x_row_stride;  // (K)
        v = __ldg(reinterpret_cast<const uint4*>(xr + k));
      } else if (a.prologue == GemvPrologue::kRmsNorm) {
        const float* xr = static_cast<const float*>(a.x) + m * a.x_row_stride;  // (K) fp32
        const float4 x0 = __ldg(reinterpret_cast<const float4*>(xr + k));
        const float4 x1 = __ldg(reinterpret_cast<const float4*>(xr + k + 4));
        const float4 w0 = __ldg(reinterpret_cast<const float4*>(a.norm_weight + k));
        const float4 w1 = __ldg(reinterpret_cast<const float4*>(a.norm_weight + k + 4));
        const float s = inv_rms[m];
        const float f[kChunk] = {rms_scale(x0.x, s, w0.x), rms_scale(x0.y, s, w0.y),
                                 rms_scale(x0.z, s, w0.z), rms_scale(x0.w, s, w0.w),
                                 rms_scale(x1.x, s, w1.x), rms_scale(x1.y, s, w1.y),
                                 rms_scale(x1.z, s, w1.z), rms_scale(x1.w, s, w1.w)};
        v = pack8<T>(f);
      } else {  // kSiluGate: row = [gate (K) | up (K)]
        const T* xr = static_cast<const T*>(a.x) + m * a.x_row_stride;
        float g[kChunk], u[kChunk], f[kChunk];
        unpack8<T>(__ldg(reinterpret_cast<const uint4*>(xr + k)), g);
        unpack8<T>(__ldg(reinterpret_cast<const uint4*>(xr + a.k + k)), u);
#pragma unroll
        for (int i = 0; i < kChunk; ++i) f[i] = silu_gate(g[i], u[i]);
        v = pack8<T>(f);
      }
    }
    *reinterpret_cast<uint4*>(xs + m * Cfg::kXStride + chunk * kChunk) = v;
  }
}

// ---- kernels ----
// This warp's weights of one K tile: 16-byte loads of rows lo and hi at kSteps k steps.
template <typename T, class Cfg>
__device__ __forceinline__ void load_tile(const GemvArgs& a, const T* w_lo, const T* w_hi,
                                          bool lo_ok, bool hi_ok, int64_t k_warp, int c,
                                          uint4 (&lo)[Cfg::kSteps], uint4 (&hi)[Cfg::kSteps]) {
#pragma unroll
  for (int j = 0; j < Cfg::kSteps; ++j) {
    const int64_t k = k_warp + j * kStepK + c * kChunk;
    const bool in_k = k < a.k;
    lo[j] = lo_ok && in_k ? load_weights(w_lo + k) : make_uint4(0, 0, 0, 0);
    hi[j] = hi_ok && in_k ? load_weights(w_hi + k) : make_uint4(0, 0, 0, 0);
  }
}

template <typename T, class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) gemv_kernel(const GemvArgs a) {
  extern __shared__ uint4 smem[];
  T* xs = reinterpret_cast<T*>(smem);  // [2][kGemvMaxRows][kXStride] x̂ tiles
  float* partial = reinterpret_cast<float*>(xs + 2 * kGemvMaxRows * Cfg::kXStride);
  // partial: [kWarps][16 rows][8 input rows]; inv_rms: [kGemvMaxRows]
  float* inv_rms = partial + Cfg::kWarps * kAccPerWarp;

  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int g = lane / 4, c = lane % 4;
  const int row_tile = warp / Cfg::kSplits, split = warp % Cfg::kSplits;
  const int64_t block_row0 = int64_t{blockIdx.x} * Cfg::kRows;
  const int64_t row_lo = block_row0 + row_tile * kMmaRows + g, row_hi = row_lo + kMmaRows / 2;
  const bool lo_ok = row_lo < a.n, hi_ok = row_hi < a.n;
  const T* w = static_cast<const T*>(a.weight);  // (N, K)
  const T* w_lo = w + (lo_ok ? row_lo : 0) * a.k;
  const T* w_hi = w + (hi_ok ? row_hi : 0) * a.k;
  const bool has_input_row = g < a.rows;
  const int64_t warp_k0 = int64_t{split} * Cfg::kWarpK;  // this warp's first k in a tile

  // The weights never depend on the previous kernel: the first tile is requested before the
  // wait, so a PDL launch overlaps its memory ramp with the previous kernel's tail.
  allow_next_grid();
  uint4 wv_lo[Cfg::kSteps], wv_hi[Cfg::kSteps];
  load_tile<T, Cfg>(a, w_lo, w_hi, lo_ok, hi_ok, warp_k0, c, wv_lo, wv_hi);
  wait_for_previous_grid();
  if (a.prologue == GemvPrologue::kRmsNorm) {
    // The partial-sum area is free until the epilogue: it holds the per-warp slices.
    static_assert(Cfg::kWarps * kAccPerWarp * 4 >= Cfg::kWarps * kGemvMaxRows * 8, "slices fit");
    row_inv_rms<Cfg::kWarps>(a, inv_rms, reinterpret_cast<double*>(partial));
  }

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  int buf = 0;
  for (int64_t k0 = 0; k0 < a.k; k0 += Cfg::kTileK, buf ^= 1) {
    const int64_t k_warp = k0 + warp_k0;
    if (k0 > 0) load_tile<T, Cfg>(a, w_lo, w_hi, lo_ok, hi_ok, k_warp, c, wv_lo, wv_hi);
    T* xs_buf = xs + buf * kGemvMaxRows * Cfg::kXStride;
    stage_xhat<T, Cfg>(a, xs_buf, k0, inv_rms);
    __syncthreads();
    const T* x_lane = xs_buf + g * Cfg::kXStride + split * Cfg::kWarpK + c * kChunk;
#pragma unroll
    for (int j = 0; j < Cfg::kSteps; ++j) {
      if (k_warp + j * kStepK >= a.k) break;  // warp-uniform
      const uint4 xv = has_input_row ? *reinterpret_cast<const uint4*>(x_lane + j * kStepK)
                                     : make_uint4(0, 0, 0, 0);
      mma_16816<T>(acc, wv_lo[j].x, wv_hi[j].x, wv_lo[j].y, wv_hi[j].y, xv.x, xv.y);
      mma_16816<T>(acc, wv_lo[j].z, wv_hi[j].z, wv_lo[j].w, wv_hi[j].w, xv.z, xv.w);
    }
  }

  // acc: (row g, input 2c), (row g, input 2c+1), (row g+8, input 2c), (row g+8, input 2c+1).
  float* mine = partial + warp * kAccPerWarp;  // (16 rows, 8 inputs)
  mine[g * kMmaCols + 2 * c] = acc[0];
  mine[g * kMmaCols + 2 * c + 1] = acc[1];
  mine[(g + 8) * kMmaCols + 2 * c] = acc[2];
  mine[(g + 8) * kMmaCols + 2 * c + 1] = acc[3];
  __syncthreads();

  const int outputs = Cfg::kRows * a.rows;
  for (int idx = threadIdx.x; idx < outputs; idx += Cfg::kThreads) {
    const int m = idx / Cfg::kRows, local_row = idx % Cfg::kRows;
    const int64_t row = block_row0 + local_row;
    if (row >= a.n) continue;
    const int tile = local_row / kMmaRows, r16 = local_row % kMmaRows;
    float y = 0.0f;
#pragma unroll
    for (int s = 0; s < Cfg::kSplits; ++s) {
      y += partial[(tile * Cfg::kSplits + s) * kAccPerWarp + r16 * kMmaCols + m];
    }
    if (a.bias != nullptr) y += a.bias[row];
    const int64_t at = m * a.out_row_stride + row;
    if (a.epilogue == GemvEpilogue::kAddTo) {
      float* out = static_cast<float*>(a.out);
      out[at] = out[at] + y;
    } else if (a.out_dtype == DType::kF32) {
      static_cast<float*>(a.out)[at] = y;
    } else {
      static_cast<T*>(a.out)[at] = from_float<T>(y);
    }
  }
}

// ---- launchers ----
// Block shapes <row tiles, K splits, steps of 32 k per warp and tile, min blocks per SM>, chosen by
// a sweep of 14 shapes on the H100 over the Qwen2-7B GEMVs at M = 1 and 8 (choose_block_shape).
using ShortTileConfig = GemvConfig<1, 8, 2, 4>;  // 16 rows, 8 warps, kTileK 512
using LongTileConfig = GemvConfig<1, 8, 8, 2>;   // 16 rows, 8 warps, kTileK 2048
using WideSplitConfig = GemvConfig<2, 8, 4>;     // 32 rows, 16 warps, kTileK 1024
using WideConfig = GemvConfig<2, 4, 4>;          // 32 rows, 8 warps, kTileK 512
// A prefetching variant (the next tile loaded into a second register set before this tile's
// mma) measured 1-5 % slower at M = 1 and was dropped (docs/benchmarks.md).

template <typename T, class Cfg>
Status launch_gemv(const GemvArgs& a, cudaStream_t stream) {
  // The dynamic shared memory above 48 KiB is opted in once per device.
  static std::atomic<uint32_t> configured_devices{0};
  int device = 0;
  VILA_CUDA_CHECK(cudaGetDevice(&device));
  const uint32_t bit = device < 32 ? (1u << device) : 0u;
  if (bit == 0 || (configured_devices.load() & bit) == 0) {
    VILA_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<T, Cfg>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Cfg::kSmemBytes)));
    configured_devices.fetch_or(bit);
  }
  const int64_t blocks = (a.n + Cfg::kRows - 1) / Cfg::kRows;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(Cfg::kThreads);
  config.dynamicSmemBytes = Cfg::kSmemBytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = a.programmatic_launch ? 1 : 0;
  VILA_CUDA_CHECK(cudaLaunchKernelEx(&config, gemv_kernel<T, Cfg>, a));
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

std::string shape_of(const GemvArgs& a) {
  return "M " + std::to_string(a.rows) + ", N " + std::to_string(a.n) + ", K " +
         std::to_string(a.k);
}

Status check_args(const GemvArgs& a) {
  if (a.rows < 1 || a.rows > kGemvMaxRows || a.n < 1 || a.k < 1 || a.k % kChunk != 0) {
    return invalid_argument("gemv: bad shape " + shape_of(a) + " (need 1 <= M <= " +
                            std::to_string(kGemvMaxRows) + ", N >= 1, K % 8 == 0)");
  }
  if (a.n > int64_t{0x7fffffff} / 2) return invalid_argument("gemv: N too large: " + shape_of(a));
  if (a.dtype != DType::kBF16 && a.dtype != DType::kF16) {
    return unimplemented("gemv: compute dtype must be bf16 or f16");
  }
  if (a.out == nullptr || a.x == nullptr || a.weight == nullptr) {
    return invalid_argument("gemv: out, x and weight must be set (" + shape_of(a) + ")");
  }
  if (!aligned16(a.x) || !aligned16(a.weight)) {
    return invalid_argument("gemv: x and weight must be 16-byte aligned");
  }
  const bool f32_x = a.prologue == GemvPrologue::kRmsNorm;
  const int64_t x_width = a.prologue == GemvPrologue::kSiluGate ? 2 * a.k : a.k;
  const int64_t x_elem = f32_x ? 4 : 2;
  if (a.rows > 1 && (a.x_row_stride < x_width || (a.x_row_stride * x_elem) % 16 != 0)) {
    return invalid_argument("gemv: x_row_stride " + std::to_string(a.x_row_stride) +
                            " must be >= " + std::to_string(x_width) +
                            " and keep rows 16-byte aligned");
  }
  if (a.rows > 1 && a.out_row_stride < a.n) {
    return invalid_argument("gemv: out_row_stride " + std::to_string(a.out_row_stride) + " < N " +
                            std::to_string(a.n));
  }
  if (a.prologue == GemvPrologue::kRmsNorm &&
      (a.norm_weight == nullptr || !aligned16(a.norm_weight) || !(a.eps >= 0.0f))) {
    return invalid_argument("gemv: kRmsNorm needs a 16-byte aligned norm_weight and eps >= 0");
  }
  if (a.epilogue == GemvEpilogue::kAddTo && a.out_dtype != DType::kF32) {
    return invalid_argument("gemv: kAddTo needs an fp32 output");
  }
  if (a.out_dtype != DType::kF32 && a.out_dtype != a.dtype) {
    return unimplemented("gemv: out dtype must be f32 or the compute dtype");
  }
  return ok_status();
}

enum class BlockShape { kShortTile, kLongTile, kWideSplit, kWide };

// Measured through gemv() on the H100 (GB/s of weights, M = 1 / M = 8; device copy 3017 GB/s):
//   long K (down 3584 x 18944):        kLongTile 2650 / kWideSplit 1682
//   no prologue (o 3584 x 3584):       kLongTile 2088 / 1627
//   large N (gate_up 37888, lm_head):  kWide 2772, 3018 / kShortTile 2340, 2502
//   small N with a prologue (qkv):     kShortTile 1860 / kWide 1441
//   (2026-11-24, the prologue's sums spread over all warps: qkv kShortTile 1981, kLongTile 1627,
//   <1, 8, 7, 2> 1658; gate_up kWide 2818)
// More input rows cost more x̂ staging (L2 and shared-memory traffic, the prologue's arithmetic)
// per weight byte, which favours blocks with more rows; M <= 2 counts as few.
BlockShape choose_block_shape(const GemvArgs& a) {
  constexpr int64_t kLongK = 8192, kLargeN = 16384;
  constexpr int kFewRows = 2;
  const bool few = a.rows <= kFewRows;
  if (a.k >= kLongK) return few ? BlockShape::kLongTile : BlockShape::kWideSplit;
  if (a.prologue == GemvPrologue::kNone) return BlockShape::kLongTile;
  if (a.n >= kLargeN) return few ? BlockShape::kWide : BlockShape::kShortTile;
  return few ? BlockShape::kShortTile : BlockShape::kWide;
}

template <typename T>
Status launch_shape(const GemvArgs& a, cudaStream_t stream) {
  switch (choose_block_shape(a)) {
    case BlockShape::kShortTile:
      return launch_gemv<T, ShortTileConfig>(a, stream);
    case BlockShape::kLongTile:
      return launch_gemv<T, LongTileConfig>(a, stream);
    case BlockShape::kWideSplit:
      return launch_gemv<T, WideSplitConfig>(a, stream);
    case BlockShape::kWide:
      return launch_gemv<T, WideConfig>(a, stream);
  }
  return internal_error("gemv: unknown block shape");
}

}  // namespace

Status gemv(const GemvArgs& args, void* stream) {
  VILA_RETURN_IF_ERROR(check_args(args));
  const auto s = static_cast<cudaStream_t>(stream);
  VILA_DISPATCH_HALF(args.dtype, "gemv", { return launch_shape<T>(args, s); });
}

}  // namespace vila::cuda
