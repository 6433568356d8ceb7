// FlashAttention-2 backward on the tensor cores (flash_attention_backward.h has the math).
//
// Two kernels:
//   preprocess  one warp per (row, head): Δ = Σ_d dout · out and lse · log2 e into the workspace as
//               (batch, H, seq_pad) f32 (zeros past seq), and zeroes the dq / dk / dv rows.
//   main        one block of 8 warps per (query head h, block of 128 keys, sequence). Warp w
//               owns keys 16w .. 16w+15 of the block and keeps their dK, dV (16, kD) in fp32
//               registers. The block loops over the query blocks of 64 rows that see its keys
//               (causal: from the diagonal block on), Q, dO, lse, Δ double buffered with
//               cp.async. Per query block each warp computes, transposed so that its keys are
//               the MMA rows (c = scale · log2 e):
//                 Sᵀ = K Qᵀ,  Pᵀ = 2^(c·Sᵀ − lse·log2 e)  (0 above the causal diagonal),
//                 dPᵀ = V dOᵀ,  dSᵀ = scale · Pᵀ ∘ (dPᵀ − Δ),
//                 dV += Pᵀ dO,  dK += dSᵀ Q          (Pᵀ, dSᵀ rounded to bf16 as A operands),
//               writes dSᵀ to shared memory and, after a barrier, adds its share of
//               dQ = dS K (fp32) to global memory with atomics: warp w takes the query rows
//               16 (w % 4) .. +15 and the columns [0, kDqSplit) (w < 4) or [kDqSplit, kD).
//               At the end dK, dV are added (atomics: the query heads of a KV head share them)
//               to dk, dv. 128 keys per block rather than 64 halve the dQ atomics and the Q / dO
//               tile loads per key (the dQ atomics dominated: ~22 GB per SigLIP-448 step).
// Rows past seq read as zeros (their lse and Δ are 0, so they contribute nothing); keys past seq
// are zeros in K and V and their dK / dV rows are not stored. Head dims are padded in shared
// memory to kD ∈ {64, 80, 128}; global rows are never read or written past head_dim.
// H100 (tests/cuda/flash_backward_test.cpp, *Timing*): T 2048, H 12 / Hkv 2, D 128 causal 0.202 ms
// (160 TFLOP/s; 0.209 with 64-key blocks) vs 0.603 ms for the materialised cuBLAS backward;
// SigLIP-448 (10 x T 1024, H 16, D 72, full) 0.740 ms (163 TFLOP/s; ~0.82 with 64-key blocks).
#include <cmath>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/flash_attention_backward.h"
#include "backend/cuda/flash_mma.cuh"

namespace vila::cuda {

namespace {

using flash::kMmaK;
using flash::kMmaM;
using flash::kMmaN;
using flash::kSmemPad;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockN = kWarps * kMmaM;        // 128 keys per block, 16 per warp
constexpr int kBlockM = 64;                    // query rows per step
constexpr int kDqRowGroups = kBlockM / kMmaM;  // warps per dQ column group (16 rows each)
constexpr int kStages = 2;                     // Q / dO / lse / Δ tiles in flight
constexpr int kDsStride = kBlockM + kSmemPad;  // pitch of the dSᵀ tile (conflict-free ldmatrix)
static_assert(kBlockN % kBlockM == 0, "a key block starts on a query block (causal m_begin)");
static_assert(kWarps == 2 * kDqRowGroups, "two dQ column groups of kDqRowGroups warps");
constexpr int kF32PerCopy = flash::kCopyBytes / 4;
constexpr int kPreWarps = 8;  // rows per preprocess block
constexpr int kMaxGridYZ = 65535;
constexpr int64_t kMaxRowStride = int64_t{1} << 23;  // tile offsets (64 rows) stay in int32
constexpr float kLog2e = 1.4426950408889634f;

struct BwdParams {
  float* dq = nullptr;
  int64_t dq_stride = 0;
  float* dk = nullptr;
  int64_t dk_stride = 0;
  float* dv = nullptr;
  int64_t dv_stride = 0;
  const void* q = nullptr;
  int64_t q_stride = 0;
  const void* k = nullptr;
  int64_t k_stride = 0;
  const void* v = nullptr;
  int64_t v_stride = 0;
  const void* out = nullptr;
  int64_t out_stride = 0;
  const void* dout = nullptr;
  int64_t dout_stride = 0;
  const float* lse = nullptr;
  float* ws_lse2 = nullptr;   // (batch, H, seq_pad) lse · log2 e
  float* ws_delta = nullptr;  // (batch, H, seq_pad) Δ
  int seq = 0;
  int seq_pad = 0;  // seq rounded up to kBlockM
  int n_head = 0;
  int n_head_kv = 0;
  int group = 1;
  int head_dim = 0;
  bool causal = true;
  float scale = 0.0f;
  float scale_log2 = 0.0f;
};

// ---- kernels ----
// Grid (ceil(seq_pad / kPreWarps), n_head, batch); warp w of block x takes row s = x·kPreWarps + w
// of head h of sequence b.
template <typename T>
__global__ void __launch_bounds__(kPreWarps * 32) bwd_preprocess_kernel(const BwdParams p) {
  const int lane = threadIdx.x % 32;
  const int s = blockIdx.x * kPreWarps + threadIdx.x / 32;
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  if (s >= p.seq_pad) return;
  const int64_t ws = (static_cast<int64_t>(b) * p.n_head + h) * p.seq_pad + s;
  if (s >= p.seq) {
    if (lane == 0) p.ws_delta[ws] = p.ws_lse2[ws] = 0.0f;
    return;
  }
  const int64_t row = static_cast<int64_t>(b) * p.seq + s;
  const int64_t col0 = static_cast<int64_t>(h) * p.head_dim;
  const T* o = static_cast<const T*>(p.out) + row * p.out_stride + col0;
  const T* go = static_cast<const T*>(p.dout) + row * p.dout_stride + col0;
  float* dq = p.dq + row * p.dq_stride + col0;
  float* dk = p.dk + row * p.dk_stride + col0;
  float* dv = p.dv + row * p.dv_stride + col0;
  const bool kv_head = h < p.n_head_kv;  // also zeroes the dk / dv columns of KV head h
  float dot = 0.0f;
  // Pairs of columns (head_dim is even): 32 lanes x 2 columns per step.
  for (int d = 2 * lane; d < p.head_dim; d += 64) {
    dot = fmaf(to_float(o[d]), to_float(go[d]), dot);
    dot = fmaf(to_float(o[d + 1]), to_float(go[d + 1]), dot);
    const float2 zero = make_float2(0.0f, 0.0f);
    *reinterpret_cast<float2*>(dq + d) = zero;
    if (kv_head) {
      *reinterpret_cast<float2*>(dk + d) = zero;
      *reinterpret_cast<float2*>(dv + d) = zero;
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
  if (lane == 0) {
    p.ws_delta[ws] = dot;
    p.ws_lse2[ws] = p.lse[row * p.n_head + h] * kLog2e;
  }
}

// dst[0..1] += (x, y) in global memory (dst 8-byte aligned).
__device__ __forceinline__ void atomic_add2(float* dst, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(x, y));
#else
  atomicAdd(dst, x);
  atomicAdd(dst + 1, y);
#endif
}

// The first column of the second dQ column group: half of kD rounded up to 16 (ldmatrix pairs).
__host__ __device__ constexpr int dq_split(int d) {
  return (d / 2 + 2 * kMmaN - 1) / (2 * kMmaN) * (2 * kMmaN);
}

// dQ rows q_row and q_row + 8, columns [kC0, kC1), += dS K over the block's kBlockN keys (fp32
// atomics into dq_base (seq, ...) at row stride p.dq_stride): A = dS (16 queries x 16 keys per
// step) loaded transposed from the dSᵀ tile at ds_warp, B = K (key, kD) loaded transposed.
template <typename T, int kD, int kC0, int kC1>
__device__ __forceinline__ void add_dq(const BwdParams& p, float* dq_base, const T* ds_warp,
                                       const T* s_k, int a_off, int q_row, int quad_lane) {
  constexpr int kStride = kD + kSmemPad;
  constexpr int kCols = kC1 - kC0;
  static_assert(kCols > 0 && kCols % (2 * kMmaN) == 0, "dQ columns in 16-column pairs");
  float acc[kCols / kMmaN][4] = {};
#pragma unroll
  for (int kk = 0; kk < kBlockN / kMmaK; ++kk) {
    uint32_t a[4];
    flash::ldmatrix_x4_trans(a, ds_warp + kk * kMmaK * kDsStride);
#pragma unroll
    for (int d = 0; d < kCols / (2 * kMmaN); ++d) {
      uint32_t kb[4];
      flash::ldmatrix_x4_trans(kb, s_k + kk * kMmaK * kStride + a_off + kC0 + d * 2 * kMmaN);
      flash::mma_16816<T>(acc[2 * d], a, kb[0], kb[1]);
      flash::mma_16816<T>(acc[2 * d + 1], a, kb[2], kb[3]);
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = q_row + 8 * r;
    if (row >= p.seq) continue;
    float* dst = dq_base + static_cast<int64_t>(row) * p.dq_stride + kC0;
#pragma unroll
    for (int n = 0; n < kCols / kMmaN; ++n) {
      const int col = n * kMmaN + 2 * quad_lane;
      if (kC0 + col < p.head_dim) atomic_add2(dst + col, acc[n][2 * r], acc[n][2 * r + 1]);
    }
  }
}

// Grid (n_head, key blocks, batch): key block 0 (the most query blocks when causal) of every head
// first. Shared memory: K, V tiles (kBlockN, kD + kSmemPad); kStages x Q, dO tiles (kBlockM,
// kD + kSmemPad); the dSᵀ tile (kBlockN, kDsStride); kStages x lse2, Δ (kBlockM) f32.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads, 1) flash_bwd_kernel(const BwdParams p) {
  constexpr int kStride = kD + kSmemPad;
  constexpr int kKvTile = kBlockN * kStride;
  constexpr int kQTile = kBlockM * kStride;
  constexpr int kKSteps = kD / kMmaK;       // reduction steps over the head dim
  constexpr int kQTiles = kBlockM / kMmaN;  // 8-query column tiles of Sᵀ
  constexpr int kQSteps = kBlockM / kMmaK;  // 16-query reduction steps of dV, dK
  constexpr int kDTiles = kD / kMmaN;       // 8-column tiles of dK, dV
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_k = reinterpret_cast<T*>(smem_raw);
  T* s_v = s_k + kKvTile;
  T* s_q = s_v + kKvTile;             // kStages x (kBlockM, kStride)
  T* s_do = s_q + kStages * kQTile;   // kStages x (kBlockM, kStride)
  T* s_ds = s_do + kStages * kQTile;  // (kBlockN, kDsStride): row = key, column = query
  auto* s_lse = reinterpret_cast<float*>(s_ds + kBlockN * kDsStride);  // kStages x (kBlockM)
  float* s_delta = s_lse + kStages * kBlockM;                          // kStages x (kBlockM)

  const int h = blockIdx.x;
  const int key0 = blockIdx.y * kBlockN;
  const int b = blockIdx.z;
  const int hk = h / p.group;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int quad = lane / 4;  // C-fragment row (and + 8)
  const int quad_lane = lane % 4;
  const int64_t row0 = static_cast<int64_t>(b) * p.seq;  // the sequence's first row
  const int m_begin = p.causal ? key0 / kBlockM : 0;     // first query block that sees a key
  const int m_end = (p.seq + kBlockM - 1) / kBlockM;

  const int64_t q_col = static_cast<int64_t>(h) * p.head_dim;
  const int64_t kv_col = static_cast<int64_t>(hk) * p.head_dim;
  const T* q_src = static_cast<const T*>(p.q) + row0 * p.q_stride + q_col;
  const T* do_src = static_cast<const T*>(p.dout) + row0 * p.dout_stride + q_col;
  const int64_t ws_row = (static_cast<int64_t>(b) * p.n_head + h) * p.seq_pad;
  const int n_keys = min(kBlockN, p.seq - key0);
  flash::load_tile_async<kBlockN, kD, kThreads>(
      s_k, static_cast<const T*>(p.k) + (row0 + key0) * p.k_stride + kv_col, p.k_stride, n_keys,
      p.head_dim, tid);
  flash::load_tile_async<kBlockN, kD, kThreads>(
      s_v, static_cast<const T*>(p.v) + (row0 + key0) * p.v_stride + kv_col, p.v_stride, n_keys,
      p.head_dim, tid);
  const auto load_q = [&](int m, int stage) {
    const int m0 = m * kBlockM;
    const int rows = min(kBlockM, p.seq - m0);
    flash::load_tile_async<kBlockM, kD, kThreads>(s_q + stage * kQTile, q_src + m0 * p.q_stride,
                                                  p.q_stride, rows, p.head_dim, tid);
    flash::load_tile_async<kBlockM, kD, kThreads>(
        s_do + stage * kQTile, do_src + m0 * p.dout_stride, p.dout_stride, rows, p.head_dim, tid);
    // lse2 and Δ: kBlockM floats each (the workspace rows are padded to kBlockM).
    constexpr int kChunks = kBlockM / kF32PerCopy;
    if (tid < 2 * kChunks) {
      const bool lse = tid < kChunks;
      const int c = tid % kChunks * kF32PerCopy;
      float* dst = (lse ? s_lse : s_delta) + stage * kBlockM + c;
      const float* src = (lse ? p.ws_lse2 : p.ws_delta) + ws_row + m0 + c;
      flash::cp_async_16(dst, src, true);
    }
  };
  load_q(m_begin, 0);
  flash::cp_async_commit();
  flash::cp_async_wait<0>();
  __syncthreads();

  // Lane addresses of the x4 fragment loads (flash_mma.cuh): A rows and transposed B (rows 0-15
  // at column +0 / +8); B of a row-major Xᵀ operand and transposed A (rows +0 / +8 at column
  // +0 / +8 by matrix).
  const int a_off = (lane % 16) * kStride + lane / 16 * 8;
  const int bt_off = (lane % 8 + lane / 16 * 8) * kStride + (lane / 8) % 2 * 8;
  const int ds_off = (lane % 8 + lane / 16 * 8) * kDsStride + (lane / 8) % 2 * 8;
  const T* k_warp = s_k + warp * kMmaM * kStride + a_off;  // this warp's 16 keys
  const T* v_warp = s_v + warp * kMmaM * kStride + a_off;
  const int warp_key0 = key0 + warp * kMmaM;

  float dk_acc[kDTiles][4] = {};  // (16 keys, kD) fp32, scale included
  float dv_acc[kDTiles][4] = {};
  for (int m = m_begin; m < m_end; ++m) {
    const int stage = (m - m_begin) % kStages;
    if (m + 1 < m_end) load_q(m + 1, (stage + 1) % kStages);
    flash::cp_async_commit();
    const T* sq = s_q + stage * kQTile;
    const T* sdo = s_do + stage * kQTile;
    const float* lse2 = s_lse + stage * kBlockM;
    const float* delta = s_delta + stage * kBlockM;
    const int m0 = m * kBlockM;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ: (16 keys, kBlockM queries) of this warp each.
    float s[kQTiles][4] = {};
    float dp[kQTiles][4] = {};
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      uint32_t ka[4];
      uint32_t va[4];
      flash::ldmatrix_x4(ka, k_warp + ks * kMmaK);
      flash::ldmatrix_x4(va, v_warp + ks * kMmaK);
#pragma unroll
      for (int pr = 0; pr < kQTiles / 2; ++pr) {
        uint32_t qb[4];
        uint32_t ob[4];
        flash::ldmatrix_x4(qb, sq + pr * 2 * kMmaN * kStride + bt_off + ks * kMmaK);
        flash::ldmatrix_x4(ob, sdo + pr * 2 * kMmaN * kStride + bt_off + ks * kMmaK);
        flash::mma_16816<T>(s[2 * pr], ka, qb[0], qb[1]);
        flash::mma_16816<T>(s[2 * pr + 1], ka, qb[2], qb[3]);
        flash::mma_16816<T>(dp[2 * pr], va, ob[0], ob[1]);
        flash::mma_16816<T>(dp[2 * pr + 1], va, ob[2], ob[3]);
      }
    }
    // Pᵀ (into s) and dSᵀ (into dp). Element e of tile n: key warp_key0 + quad + 8 (e / 2),
    // query m0 + 8n + 2 quad_lane + e % 2. Only a block that crosses the diagonal is masked.
    const bool masked = p.causal && m0 < key0 + kBlockN;
#pragma unroll
    for (int n = 0; n < kQTiles; ++n) {
      const int col = n * kMmaN + 2 * quad_lane;
      const float2 l2 = *reinterpret_cast<const float2*>(lse2 + col);
      const float2 dl = *reinterpret_cast<const float2*>(delta + col);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float pe = flash::fast_exp2(fmaf(s[n][e], p.scale_log2, -(e % 2 ? l2.y : l2.x)));
        if (masked && warp_key0 + quad + e / 2 * 8 > m0 + col + e % 2) pe = 0.0f;
        s[n][e] = pe;
        dp[n][e] = pe * (dp[n][e] - (e % 2 ? dl.y : dl.x)) * p.scale;
      }
    }
    // As A operands (16 keys x 16 queries per step), rounded to T.
    uint32_t pa[kQSteps][4];
    uint32_t da[kQSteps][4];
#pragma unroll
    for (int kk = 0; kk < kQSteps; ++kk) {
      flash::scores_to_a<T>(pa[kk], s[2 * kk], s[2 * kk + 1]);
      flash::scores_to_a<T>(da[kk], dp[2 * kk], dp[2 * kk + 1]);
    }
    // dSᵀ to shared memory for dQ: a[0] (row quad, column 2 quad_lane), a[1] row + 8,
    // a[2] column + 8, a[3] both.
    {
      T* ds_row = s_ds + (warp * kMmaM + quad) * kDsStride + 2 * quad_lane;
#pragma unroll
      for (int kk = 0; kk < kQSteps; ++kk) {
        T* dst = ds_row + kk * kMmaK;
        *reinterpret_cast<uint32_t*>(dst) = da[kk][0];
        *reinterpret_cast<uint32_t*>(dst + 8 * kDsStride) = da[kk][1];
        *reinterpret_cast<uint32_t*>(dst + 8) = da[kk][2];
        *reinterpret_cast<uint32_t*>(dst + 8 * kDsStride + 8) = da[kk][3];
      }
    }
    // dV += Pᵀ dO, dK += dSᵀ Q: B operands are the row-major (query, kD) tiles, loaded transposed.
#pragma unroll
    for (int kk = 0; kk < kQSteps; ++kk) {
#pragma unroll
      for (int d = 0; d < kDTiles / 2; ++d) {
        uint32_t ob[4];
        uint32_t qb[4];
        flash::ldmatrix_x4_trans(ob, sdo + kk * kMmaK * kStride + a_off + d * 2 * kMmaN);
        flash::ldmatrix_x4_trans(qb, sq + kk * kMmaK * kStride + a_off + d * 2 * kMmaN);
        flash::mma_16816<T>(dv_acc[2 * d], pa[kk], ob[0], ob[1]);
        flash::mma_16816<T>(dv_acc[2 * d + 1], pa[kk], ob[2], ob[3]);
        flash::mma_16816<T>(dk_acc[2 * d], da[kk], qb[0], qb[1]);
        flash::mma_16816<T>(dk_acc[2 * d + 1], da[kk], qb[2], qb[3]);
      }
    }
    __syncthreads();  // every warp's dSᵀ is in shared memory

    // dQ += dS K, split over the warps by query rows and columns (add_dq).
    const int row_group = warp % kDqRowGroups;
    const T* ds_warp = s_ds + row_group * kMmaM + ds_off;
    const int q_row = m0 + row_group * kMmaM + quad;  // and + 8
    float* dq_base = p.dq + row0 * p.dq_stride + q_col;
    if (warp < kDqRowGroups) {
      add_dq<T, kD, 0, dq_split(kD)>(p, dq_base, ds_warp, s_k, a_off, q_row, quad_lane);
    } else {
      add_dq<T, kD, dq_split(kD), kD>(p, dq_base, ds_warp, s_k, a_off, q_row, quad_lane);
    }
    flash::cp_async_wait<0>();
    __syncthreads();  // the next tiles landed; everyone is done with this stage and dSᵀ
  }

  // dK, dV of this warp's keys into the KV head's rows.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = warp_key0 + quad + 8 * r;
    if (key >= p.seq) continue;
    float* dk = p.dk + (row0 + key) * p.dk_stride + kv_col;
    float* dv = p.dv + (row0 + key) * p.dv_stride + kv_col;
#pragma unroll
    for (int n = 0; n < kDTiles; ++n) {
      const int col = n * kMmaN + 2 * quad_lane;
      if (col >= p.head_dim) continue;
      atomic_add2(dk + col, dk_acc[n][2 * r], dk_acc[n][2 * r + 1]);
      atomic_add2(dv + col, dv_acc[n][2 * r], dv_acc[n][2 * r + 1]);
    }
  }
}

// ---- launchers ----
bool aligned(const void* ptr, uintptr_t bytes) {
  return ptr != nullptr && reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

int padded_seq(int seq) { return ceil_div(seq, kBlockM) * kBlockM; }

// The shared-memory head dim of a supported head_dim, 0 otherwise.
int backward_head_dim(int head_dim) {
  const int kd = flash::padded_head_dim(head_dim);
  return kd == 64 || kd == 80 || kd == 128 ? kd : 0;
}

template <typename T, int kD>
Status launch_bwd(const BwdParams& p, int batch, cudaStream_t stream) {
  constexpr int kStride = kD + kSmemPad;
  constexpr size_t kSmemBytes =
      (2 * kBlockN * kStride + 2 * kStages * kBlockM * kStride + kBlockN * kDsStride) * sizeof(T) +
      2 * kStages * kBlockM * sizeof(float);
  const dim3 pre_grid(static_cast<unsigned>(ceil_div(p.seq_pad, kPreWarps)),
                      static_cast<unsigned>(p.n_head), static_cast<unsigned>(batch));
  bwd_preprocess_kernel<T><<<pre_grid, kPreWarps * 32, 0, stream>>>(p);
  VILA_CUDA_CHECK(cudaGetLastError());
  const auto kernel = flash_bwd_kernel<T, kD>;
  VILA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const dim3 grid(static_cast<unsigned>(p.n_head),
                  static_cast<unsigned>(ceil_div(p.seq_pad, kBlockN)),
                  static_cast<unsigned>(batch));
  kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

Status check_args(const AttentionBackwardArgs& a) {
  const std::string op = "flash_attention_backward";
  if (a.dtype != DType::kBF16) {
    return unimplemented(op + ": dtype " + std::string(dtype_name(a.dtype)) + " (bf16 only)");
  }
  if (backward_head_dim(a.head_dim) == 0) {
    return unimplemented(op + ": head_dim " + std::to_string(a.head_dim) +
                         " unsupported (64, 72, 80, 128)");
  }
  if (a.batch < 1 || a.batch > kMaxGridYZ) {
    return invalid_argument(op + ": batch " + std::to_string(a.batch) + " must be in [1, 65535]");
  }
  if (a.seq < 0 || ceil_div(int64_t{a.seq}, kBlockN) > kMaxGridYZ) {
    return invalid_argument(op + ": seq " + std::to_string(a.seq) + " must be in [0, 2^22]");
  }
  if (a.n_head < 1 || a.n_head_kv < 1 || a.n_head % a.n_head_kv != 0 || a.n_head > kMaxGridYZ) {
    return invalid_argument(op + ": n_head " + std::to_string(a.n_head) +
                            " must be a positive multiple of n_head_kv " +
                            std::to_string(a.n_head_kv));
  }
  if (!(a.scale > 0.0f) || !std::isfinite(a.scale)) {
    return invalid_argument(op + ": scale " + std::to_string(a.scale) + " must be positive");
  }
  const int64_t q_row = int64_t{a.n_head} * a.head_dim;
  const int64_t kv_row = int64_t{a.n_head_kv} * a.head_dim;
  struct In16 {
    const char* name;
    const void* ptr;
    int64_t stride, width;
  };
  for (const In16& in :
       {In16{"q", a.q, a.q_row_stride, q_row}, In16{"k", a.k, a.k_row_stride, kv_row},
        In16{"v", a.v, a.v_row_stride, kv_row}, In16{"out", a.out, a.out_row_stride, q_row},
        In16{"dout", a.dout, a.dout_row_stride, q_row}}) {
    if (!aligned(in.ptr, flash::kCopyBytes) || in.stride < in.width ||
        in.stride % flash::kElemsPerCopy != 0 || in.stride > kMaxRowStride) {
      return invalid_argument(op + ": " + in.name + " must be 16-byte aligned with a row stride (" +
                              std::to_string(in.stride) + ") that is a multiple of 8, >= " +
                              std::to_string(in.width) + " and <= 2^23");
    }
  }
  struct Out32 {
    const char* name;
    const float* ptr;
    int64_t stride, width;
  };
  for (const Out32& o :
       {Out32{"dq", a.dq, a.dq_row_stride, q_row}, Out32{"dk", a.dk, a.dk_row_stride, kv_row},
        Out32{"dv", a.dv, a.dv_row_stride, kv_row}}) {
    if (!aligned(o.ptr, sizeof(float2)) || o.stride < o.width || o.stride % 2 != 0) {
      return invalid_argument(op + ": " + o.name + " must be 8-byte aligned with an even row " +
                              "stride (" + std::to_string(o.stride) +
                              ") >= " + std::to_string(o.width));
    }
  }
  if (!aligned(a.lse, sizeof(float))) {
    return invalid_argument(op + ": lse (the forward's log-sum-exp) is required");
  }
  if (!aligned(a.workspace, flash::kCopyBytes)) {
    return invalid_argument(op + ": workspace must be non-null and 16-byte aligned");
  }
  return {};
}

}  // namespace

size_t attention_backward_workspace_bytes(const AttentionBackwardArgs& args) {
  if (args.batch < 1 || args.n_head < 1 || args.seq < 1) return 0;
  return 2 * static_cast<size_t>(args.batch) * static_cast<size_t>(args.n_head) *
         static_cast<size_t>(padded_seq(args.seq)) * sizeof(float);
}

Status flash_attention_backward(const AttentionBackwardArgs& args, void* stream) {
  VILA_RETURN_IF_ERROR(check_args(args));
  if (args.seq == 0) return {};
  BwdParams p;
  p.dq = args.dq;
  p.dq_stride = args.dq_row_stride;
  p.dk = args.dk;
  p.dk_stride = args.dk_row_stride;
  p.dv = args.dv;
  p.dv_stride = args.dv_row_stride;
  p.q = args.q;
  p.q_stride = args.q_row_stride;
  p.k = args.k;
  p.k_stride = args.k_row_stride;
  p.v = args.v;
  p.v_stride = args.v_row_stride;
  p.out = args.out;
  p.out_stride = args.out_row_stride;
  p.dout = args.dout;
  p.dout_stride = args.dout_row_stride;
  p.lse = args.lse;
  p.seq = args.seq;
  p.seq_pad = padded_seq(args.seq);
  const size_t plane = static_cast<size_t>(args.batch) * args.n_head * p.seq_pad;
  p.ws_lse2 = static_cast<float*>(args.workspace);
  p.ws_delta = p.ws_lse2 + plane;
  p.n_head = args.n_head;
  p.n_head_kv = args.n_head_kv;
  p.group = args.n_head / args.n_head_kv;
  p.head_dim = args.head_dim;
  p.causal = args.causal;
  p.scale = args.scale;
  p.scale_log2 = args.scale * kLog2e;
  const auto s = static_cast<cudaStream_t>(stream);
  using T = __nv_bfloat16;
  switch (backward_head_dim(args.head_dim)) {
    case 64:
      return launch_bwd<T, 64>(p, args.batch, s);
    case 80:
      return launch_bwd<T, 80>(p, args.batch, s);
    case 128:
      return launch_bwd<T, 128>(p, args.batch, s);
    default:
      return unimplemented("flash_attention_backward: head_dim " + std::to_string(args.head_dim));
  }
}

}  // namespace vila::cuda
