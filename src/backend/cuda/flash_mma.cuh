// Warp-level building blocks of the fused attention kernels (flash_attention.cu,
// decode_attention.cu): 16-byte cp.async with zero fill, ldmatrix (plain and transposed), the
// tensor-core MMA m16n8k16 (bf16 or f16 in, fp32 accumulate) and fp32 -> 16-bit pair packing.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * g + t, g = lane / 4, t = lane % 4):
//   A (16x16, row-major)  a0: (g, 2t..2t+1)   a1: (g+8, 2t..)   a2: (g, 2t+8..)   a3: (g+8, 2t+8..)
//   B (16x8,  k x n)      b0: (2t..2t+1, g)   b1: (2t+8.., g)
//   C (16x8, fp32)        c0, c1: (g, 2t..2t+1)   c2, c3: (g+8, 2t..2t+1)
// ldmatrix.x4 loads four 8x8 16-bit matrices; lanes 8i..8i+7 give the row addresses of matrix i,
// and each lane receives (row lane/4, cols 2*(lane%4)..+1) of every matrix (transposed with
// .trans).
#pragma once

#include <cstdint>

#include "backend/cuda/cuda_common.cuh"

namespace vila::cuda::flash {

inline constexpr int kCopyBytes = 16;  // one cp.async / vector access
inline constexpr int kMmaM = 16;
inline constexpr int kMmaN = 8;
inline constexpr int kMmaK = 16;
inline constexpr int kElemsPerCopy = kCopyBytes / 2;  // 16-bit elements per 16-byte copy
// Elements appended to every shared-memory row: a row pitch of 2 * (kD + 8) bytes puts the eight
// row addresses of one ldmatrix in eight different 16-byte bank groups for every supported kD.
inline constexpr int kSmemPad = 8;

// The shared-memory head dim (a multiple of 16) of a supported head_dim, 0 for an unsupported one:
// 16, 32 -> 32; 64; 72, 80 -> 80; 96; 128. Few kernel instances; padding columns are zeros.
constexpr int padded_head_dim(int head_dim) {
  switch (head_dim) {
    case 16:
    case 32:
      return 32;
    case 64:
      return 64;
    case 72:
    case 80:
      return 80;
    case 96:
      return 96;
    case 128:
      return 128;
    default:
      return 0;
  }
}

// Copies 16 bytes global -> shared asynchronously (L2 only: K/V tiles are streamed). With
// `valid` false nothing is read and the 16 bytes are zero-filled; gmem must still be a valid
// address then (any in-bounds pointer).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const auto dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? kCopyBytes : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most kPending committed groups of this thread are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Two 8x8 matrices: lanes 0-7 address the rows of the first, lanes 8-15 those of the second (the
// other lanes' addresses are ignored).
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* smem) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const void* smem) {
  const auto addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}

// d += a · b with k = 8 (half an m16n8k16 step): a0, a1 are registers 0 and 1 of the k = 16 A
// fragment (rows g and g + 8, k 2c, 2c+1), b0 its first B register. For a head dim that is an odd
// multiple of 8 (SigLIP's 72), whose last 16-column step is half padding.
template <typename T>
__device__ __forceinline__ void mma_1688(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0);
template <>
__device__ __forceinline__ void mma_1688<__nv_bfloat16>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                        uint32_t b0) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(b0));
}
template <>
__device__ __forceinline__ void mma_1688<__half>(float (&d)[4], uint32_t a0, uint32_t a1,
                                                 uint32_t b0) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(b0));
}

// d += a · b on the tensor cores, 16-bit inputs of type T (__nv_bfloat16 or __half), fp32 d.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                         uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4],
                                                  uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Rounds (lo, hi) to T (nearest even) and packs them into one register, lo in the low half: the
// element order of an MMA operand pair and of a 4-byte store.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// 2^x on the SFU (ex2.approx.ftz: ~2 ulp, subnormal results flushed to 0, 2^-inf = 0): the
// softmax exponential with the scale folded into the log2 domain.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Copies a (kRows, head_dim) tile of 16-bit rows (src row stride in elements) into shared-memory
// rows of kD + kSmemPad elements, kThreads threads cooperating (tid = threadIdx.x). Rows >= n_rows
// and columns >= head_dim are zero-filled and never read; head_dim is a multiple of 8 and <= kD,
// src and the row stride 16-byte aligned.
template <int kRows, int kD, int kThreads, typename T>
__device__ __forceinline__ void load_tile_async(T* smem, const T* src, int64_t row_stride,
                                                int n_rows, int head_dim, int tid) {
  constexpr int kChunks = kD / kElemsPerCopy;  // 16-byte chunks per row
  constexpr int kStride = kD + kSmemPad;
  constexpr int kIters = (kRows * kChunks + kThreads - 1) / kThreads;
  const int stride = static_cast<int>(row_stride);  // callers keep kRows * stride < 2^31
#pragma unroll 1
  for (int it = 0; it < kIters; ++it) {
    const int idx = tid + it * kThreads;
    if (kRows * kChunks % kThreads != 0 && idx >= kRows * kChunks) break;
    const int r = idx / kChunks;
    const int c = idx % kChunks * kElemsPerCopy;
    const bool valid = r < n_rows && c < head_dim;
    cp_async_16(smem + r * kStride + c, src + (valid ? r * stride + c : 0), valid);
  }
}

// The A fragments (16 rows x kD) of rows row0 .. row0+15 of a shared-memory tile of pitch
// kD + kSmemPad, one per 16-column step.
template <int kD, typename T>
__device__ __forceinline__ void load_a_fragments(uint32_t (&a)[kD / kMmaK][4], const T* tile,
                                                 int row0, int lane) {
  constexpr int kStride = kD + kSmemPad;
  // Lanes 0-15 address rows 0-15 at column 0 of the step, lanes 16-31 the same rows at column 8.
  const T* base = tile + (row0 + lane % 16) * kStride + lane / 16 * kElemsPerCopy;
#pragma unroll
  for (int ks = 0; ks < kD / kMmaK; ++ks) ldmatrix_x4(a[ks], base + ks * kMmaK);
}

// s[n] += A · K[key0 + 8n .. +7]ᵀ for two 8-key column tiles (kTilePairs pairs), K a
// shared-memory tile of rows of pitch kD + kSmemPad (row = key): the Q·Kᵀ scores of a warp.
template <int kD, int kTilePairs, typename T>
__device__ __forceinline__ void mma_a_bt(float (&s)[2 * kTilePairs][4],
                                         const uint32_t (&a)[kD / kMmaK][4], const T* k_tile,
                                         int key0, int lane) {
  constexpr int kStride = kD + kSmemPad;
  // Matrix i = lane / 8 of the x4 load: keys +8 for i >= 2, columns +8 for odd i, giving
  // b0, b1 of tile 2p and b0, b1 of tile 2p+1.
  const T* base = k_tile + (key0 + lane % 8 + lane / 16 * 8) * kStride + (lane / 8) % 2 * 8;
#pragma unroll
  for (int ks = 0; ks < kD / kMmaK; ++ks) {
#pragma unroll
    for (int p = 0; p < kTilePairs; ++p) {
      uint32_t b[4];
      ldmatrix_x4(b, base + p * 2 * kMmaN * kStride + ks * kMmaK);
      mma_16816<T>(s[2 * p], a[ks], b[0], b[1]);
      mma_16816<T>(s[2 * p + 1], a[ks], b[2], b[3]);
    }
  }
}

// o += P · V[key0 .. key0+15] for one 16-key step: p holds the A fragment of P (16 x 16), V a
// shared-memory tile (row = key, pitch kD + kSmemPad), o the kD / 8 column tiles of the output.
template <int kD, typename T>
__device__ __forceinline__ void mma_p_v(float (&o)[kD / kMmaN][4], const uint32_t (&p)[4],
                                        const T* v_tile, int key0, int lane) {
  constexpr int kStride = kD + kSmemPad;
  // Transposed x4: keys +8 for odd matrices, columns +8 for matrices 2, 3: b0, b1 of column tile
  // 2d and of 2d+1.
  const T* base = v_tile + (key0 + lane % 16) * kStride + lane / 16 * 8;
#pragma unroll
  for (int d = 0; d < kD / (2 * kMmaN); ++d) {
    uint32_t b[4];
    ldmatrix_x4_trans(b, base + d * 2 * kMmaN);
    mma_16816<T>(o[2 * d], p, b[0], b[1]);
    mma_16816<T>(o[2 * d + 1], p, b[2], b[3]);
  }
}

// Packs the scores of two 8-key C tiles (fp32) into the A fragment of the 16-key step they form.
template <typename T>
__device__ __forceinline__ void scores_to_a(uint32_t (&a)[4], const float (&lo)[4],
                                            const float (&hi)[4]) {
  a[0] = pack2<T>(lo[0], lo[1]);
  a[1] = pack2<T>(lo[2], lo[3]);
  a[2] = pack2<T>(hi[0], hi[1]);
  a[3] = pack2<T>(hi[2], hi[3]);
}

// Online-softmax update of one warp's 16 rows after a tile of kTiles x 8 scores: each thread owns
// rows g (r = 0: elements 0, 1 of each C tile) and g + 8 (r = 1: elements 2, 3). row_max is kept
// in raw score units, row_sum as this thread's partial sum (the quad sums it at the end). The
// scores become p = 2^(s·c − max·c) (c = scale·log2 e); corr[r] is the factor the row's output
// accumulator must be scaled by (rescale_rows). Masked scores are -inf; a row with no unmasked
// score so far keeps max -inf and contributes zeros.
template <int kTiles>
__device__ __forceinline__ void softmax_update(float (&s)[kTiles][4], float (&row_max)[2],
                                               float (&row_sum)[2], float scale_log2,
                                               float (&corr)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = row_max[r];
#pragma unroll
    for (int n = 0; n < kTiles; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
    // The four lanes of a quad hold the same rows.
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float base = mx == -INFINITY ? 0.0f : mx * scale_log2;
    corr[r] = fast_exp2(row_max[r] * scale_log2 - base);  // 0 while row_max is -inf
    row_max[r] = mx;
    float sum = row_sum[r] * corr[r];
#pragma unroll
    for (int n = 0; n < kTiles; ++n) {
      s[n][2 * r] = fast_exp2(fmaf(s[n][2 * r], scale_log2, -base));
      s[n][2 * r + 1] = fast_exp2(fmaf(s[n][2 * r + 1], scale_log2, -base));
      sum += s[n][2 * r] + s[n][2 * r + 1];
    }
    row_sum[r] = sum;
  }
}

// o *= corr row by row (rows g and g + 8 of the warp's C tiles, as softmax_update).
template <int kOTiles>
__device__ __forceinline__ void rescale_rows(float (&o)[kOTiles][4], const float (&corr)[2]) {
#pragma unroll
  for (int n = 0; n < kOTiles; ++n) {
    o[n][0] *= corr[0];
    o[n][1] *= corr[0];
    o[n][2] *= corr[1];
    o[n][3] *= corr[1];
  }
}

// softmax_update, then the output accumulator rescaled (o holds the rows' P·V so far).
template <int kTiles, int kOTiles>
__device__ __forceinline__ void online_softmax(float (&s)[kTiles][4], float (&o)[kOTiles][4],
                                               float (&row_max)[2], float (&row_sum)[2],
                                               float scale_log2) {
  float corr[2];
  softmax_update(s, row_max, row_sum, scale_log2, corr);
  rescale_rows(o, corr);
}

// Sum of v over the four lanes of a quad (the lanes that share a row of an MMA C tile).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace vila::cuda::flash
