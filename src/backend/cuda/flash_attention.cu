// FlashAttention-2 forward on the tensor cores: flash_attention_paged (prefill / extend over the
// paged KV cache, causal, GQA) and flash_attention_dense (contiguous K/V rows, causal or not).
//
// Per sequence, query head h (KV head h / group) and query row i at position pos_i:
//   s_ij = q_i · k_j,   out_i = Σ_j softmax_j(scale · s_i) v_j,   j < kv_len (and j <= pos_i when
//   causal; pos_i = kv_len - q_len + i).
// A block of 4 warps takes 128 query rows of one head, a warp 32 of them (two MMA row tiles that
// share every K / V fragment read from shared memory). K and V stream through
// shared memory in tiles of 64 keys (for the paged cache a tile is one page of one KV head),
// double buffered with cp.async. Per tile each warp computes S = Q Kᵀ (mma m16n8k16, fp32), the
// online softmax in the log2 domain (c = scale · log2 e)
//   m' = max(m, max_j s_j),  p_j = 2^(c·s_j − c·m'),  l' = 2^(c·m − c·m') l + Σ_j p_j,
//   O' = 2^(c·m − c·m') O + P V   (P rounded to the 16-bit type for the MMA),
// and writes out = O / l (dense, optionally, lse = (c·m + log2 l) · ln 2 per row for the
// backward). Causal blocks stop at the tile of their last query; only tiles that
// cross the diagonal or the end of the keys are masked. Head dims are padded in shared memory to
// kD ∈ {32, 64, 80, 96, 128} with zeros (FwdConfig); global rows are never read past head_dim.
#include <cmath>
#include <cstdlib>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/flash_attention_wgmma.h"
#include "backend/cuda/flash_mma.cuh"
#include "backend/cuda/flash_params.cuh"

namespace vila::cuda {

namespace {

using flash::DenseLoader;
using flash::FwdParams;
using flash::kMmaK;
using flash::kMmaM;
using flash::kMmaN;
using flash::kSmemPad;
using flash::PagedLoader;
using flash::SeqInfo;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// 16-row MMA tiles per warp. Two (32 rows) halve the shared-memory and L2 reads per query row
// (H100, SigLIP dense attention: 229 TFLOP/s vs 199 with one).
constexpr int kWarpTiles = 2;
constexpr int kBlockM = kWarps * kWarpTiles * kMmaM;  // 128 query rows per block
constexpr int kStages = 2;                            // K/V tiles in flight (double buffering)
constexpr int kMaxGridYZ = 65535;
constexpr int64_t kMaxRowStride = int64_t{1} << 23;  // tile offsets (128 rows) stay in int32
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- kernel ----
// Compile-time shape of a forward instance. kD: the shared-memory (padded) head dim, a multiple of
// 16; kDValid <= kD: the columns computed, a multiple of 8 (an odd multiple of 8 ends Q·Kᵀ with a
// k = 8 MMA and P·V with a single 8-column tile, so SigLIP's 72 pays for 72, not 80). kBlockN:
// keys per K/V tile (the paged cache's page size for PagedLoader). kMinBlocks: blocks per SM the
// registers are budgeted for. kQInRegs: the warp keeps its Q fragments in registers (else it
// re-reads them from shared memory every tile).
template <int kD_, int kDValid_, int kBlockN_, int kMinBlocks_, bool kQInRegs_>
struct FwdConfig {
  static constexpr int kD = kD_;
  static constexpr int kDValid = kDValid_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr bool kQInRegs = kQInRegs_;
  static constexpr int kStride = kD + kSmemPad;
  static constexpr int kTileElems = kBlockN * kStride;  // one K or V tile
  // With Q in registers and a stage as tall as the Q tile, Q borrows stage 1 until it is loaded.
  static constexpr bool kQBorrowsStage = kQInRegs && kBlockM == 2 * kBlockN;
  static constexpr size_t kSmemElems =
      2 * kStages * kTileElems + (kQBorrowsStage ? 0 : kBlockM * kStride);
  static_assert(kD % kMmaK == 0 && kDValid % kMmaN == 0 && kDValid <= kD, "head dims");
  static_assert(kBlockN % kMmaK == 0, "whole P·V steps per tile");
};

// Grid (query blocks, n_head, batch); blockIdx.x counts query blocks from the last one, so the
// longest causal blocks start first. Warp w owns rows 32w .. 32w+31 of the block as two MMA row
// tiles: every K / V fragment read from shared memory feeds both. Shared memory: kStages stages of
// [K tile | V tile], each (kBlockN, kD + kSmemPad), then the Q tile (kBlockM, kD + kSmemPad) unless
// it borrows stage 1 (FwdConfig::kQBorrowsStage).
template <typename T, class Cfg, typename Loader>
__global__ void __launch_bounds__(kThreads, Cfg::kMinBlocks) flash_fwd_kernel(const FwdParams p) {
  constexpr int kD = Cfg::kD;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kStride = Cfg::kStride;
  constexpr int kTileElems = Cfg::kTileElems;
  constexpr int kKSteps = Cfg::kDValid / kMmaK;           // full Q·Kᵀ reduction steps
  constexpr bool kHalfStep = Cfg::kDValid % kMmaK != 0;   // then one k = 8 step
  constexpr int kQSteps = kKSteps + (kHalfStep ? 1 : 0);  // Q fragments per row tile
  constexpr int kKeyTiles = kBlockN / kMmaN;              // score column tiles
  constexpr int kOTiles = Cfg::kDValid / kMmaN;           // output column tiles
  constexpr bool kQInRegs = Cfg::kQInRegs;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  // Stage s: K at tile 2s, V at tile 2s+1. Q: over stage 1, or after the stages.
  T* s_q = smem + (Cfg::kQBorrowsStage ? 2 : 2 * kStages) * kTileElems;  // (kBlockM, kStride)

  const int b = blockIdx.z;
  const int h = blockIdx.y;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kBlockM;
  const SeqInfo seq = Loader::sequence(p, b);
  if (m0 >= seq.q_len) return;
  const int hk = h / p.group;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int pos_offset = seq.kv_len - seq.q_len;  // position of query row 0
  // Keys this block reads: all of them, or up to the position of its last row when causal.
  int kv_end = seq.kv_len;
  if (p.causal) kv_end = min(kv_end, pos_offset + min(m0 + kBlockM, seq.q_len));
  const int n_tiles = kv_end > 0 ? (kv_end + kBlockN - 1) / kBlockN : 0;

  const T* q_src = static_cast<const T*>(p.q) + (seq.q_row0 + m0) * p.q_stride +
                   static_cast<int64_t>(h) * p.head_dim;
  flash::load_tile_async<kBlockM, kD, kThreads>(s_q, q_src, p.q_stride, seq.q_len - m0, p.head_dim,
                                                tid);
  const auto load_kv = [&](int j, int stage) {
    const int rows = min(kBlockN, seq.kv_len - j * kBlockN);
    flash::load_tile_async<kBlockN, kD, kThreads>(smem + 2 * stage * kTileElems,
                                                  Loader::template k_tile<T, kBlockN>(p, b, hk, j),
                                                  Loader::k_stride(p), rows, p.head_dim, tid);
    flash::load_tile_async<kBlockN, kD, kThreads>(smem + (2 * stage + 1) * kTileElems,
                                                  Loader::template v_tile<T, kBlockN>(p, b, hk, j),
                                                  Loader::v_stride(p), rows, p.head_dim, tid);
  };
  if (n_tiles > 0) load_kv(0, 0);
  flash::cp_async_commit();
  flash::cp_async_wait<0>();
  __syncthreads();
  // Lane addresses of the fragment loads (see flash_mma.cuh): x4 Q rows 0-15 of a row tile at
  // column +0 / +8; x4 K keys +0 / +8 at column +0 / +8; x4 V keys 0-15 at column +0 / +8. The
  // x2 loads of a half step use lanes 0-15: rows (keys) 0-15 at column +0.
  const T* q_base = s_q + (warp * kWarpTiles * kMmaM + lane % 16) * kStride + lane / 16 * 8;
  const int k_offset = (lane % 8 + lane / 16 * 8) * kStride + (lane / 8) % 2 * 8;
  const int k_half_offset = (lane % 16) * kStride;
  const int v_offset = (lane % 16) * kStride + lane / 16 * 8;
  // (32 rows of this warp, kDValid) as A fragments when they fit in registers.
  uint32_t q_frag[kQInRegs ? kWarpTiles : 1][kQInRegs ? kQSteps : 1][4];
  if constexpr (kQInRegs) {
#pragma unroll
    for (int mt = 0; mt < kWarpTiles; ++mt) {
#pragma unroll
      for (int ks = 0; ks < kQSteps; ++ks) {
        flash::ldmatrix_x4(q_frag[mt][ks], q_base + mt * kMmaM * kStride + ks * kMmaK);
      }
    }
    __syncthreads();  // stage 1 is free again
  }

  float o[kWarpTiles][kOTiles][4] = {};  // (32, kDValid) fp32 accumulator of this warp
  float row_max[kWarpTiles][2];
  float row_sum[kWarpTiles][2];
#pragma unroll
  for (int mt = 0; mt < kWarpTiles; ++mt) {
    row_max[mt][0] = row_max[mt][1] = -INFINITY;
    row_sum[mt][0] = row_sum[mt][1] = 0.0f;
  }
  const int quad = lane / 4;  // C-fragment row within a row tile (and + 8)
  const int quad_lane = lane % 4;
  const int warp_pos0 = pos_offset + m0 + warp * kWarpTiles * kMmaM;  // warp's first position

  for (int j = 0; j < n_tiles; ++j) {
    const int stage = j % kStages;
    if (j + 1 < n_tiles) load_kv(j + 1, (j + 1) % kStages);
    flash::cp_async_commit();
    const T* k_stage = smem + 2 * stage * kTileElems;
    const T* k_tile = k_stage + k_offset;
    const T* v_tile = smem + (2 * stage + 1) * kTileElems + v_offset;

    // S = Q Kᵀ: (32, kBlockN) scores of this warp.
    float s[kWarpTiles][kKeyTiles][4] = {};
#pragma unroll
    for (int ks = 0; ks < kKSteps; ++ks) {
      uint32_t a[kWarpTiles][4];
#pragma unroll
      for (int mt = 0; mt < kWarpTiles; ++mt) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int i = 0; i < 4; ++i) a[mt][i] = q_frag[mt][ks][i];
        } else {
          flash::ldmatrix_x4(a[mt], q_base + mt * kMmaM * kStride + ks * kMmaK);
        }
      }
#pragma unroll
      for (int pr = 0; pr < kKeyTiles / 2; ++pr) {
        uint32_t kb[4];
        flash::ldmatrix_x4(kb, k_tile + pr * 2 * kMmaN * kStride + ks * kMmaK);
#pragma unroll
        for (int mt = 0; mt < kWarpTiles; ++mt) {
          flash::mma_16816<T>(s[mt][2 * pr], a[mt], kb[0], kb[1]);
          flash::mma_16816<T>(s[mt][2 * pr + 1], a[mt], kb[2], kb[3]);
        }
      }
    }
    if constexpr (kHalfStep) {  // columns 16·kKSteps .. +7
      uint32_t a[kWarpTiles][2];
#pragma unroll
      for (int mt = 0; mt < kWarpTiles; ++mt) {
        if constexpr (kQInRegs) {
          a[mt][0] = q_frag[mt][kKSteps][0];
          a[mt][1] = q_frag[mt][kKSteps][1];
        } else {
          flash::ldmatrix_x2(a[mt],
                             s_q + (warp * kWarpTiles * kMmaM + mt * kMmaM + lane % 16) * kStride +
                                 kKSteps * kMmaK);
        }
      }
#pragma unroll
      for (int pr = 0; pr < kKeyTiles / 2; ++pr) {
        uint32_t kb[2];  // keys 0-7 and 8-15 of the pair
        flash::ldmatrix_x2(kb,
                           k_stage + k_half_offset + pr * 2 * kMmaN * kStride + kKSteps * kMmaK);
#pragma unroll
        for (int mt = 0; mt < kWarpTiles; ++mt) {
          flash::mma_1688<T>(s[mt][2 * pr], a[mt][0], a[mt][1], kb[0]);
          flash::mma_1688<T>(s[mt][2 * pr + 1], a[mt][0], a[mt][1], kb[1]);
        }
      }
    }
    const int key0 = j * kBlockN;
    if (key0 + kBlockN > seq.kv_len || (p.causal && key0 + kBlockN - 1 > warp_pos0)) {
#pragma unroll
      for (int mt = 0; mt < kWarpTiles; ++mt) {
#pragma unroll
        for (int n = 0; n < kKeyTiles; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = key0 + n * kMmaN + 2 * quad_lane + e % 2;
            const int pos = warp_pos0 + mt * kMmaM + quad + e / 2 * 8;
            if (key >= seq.kv_len || (p.causal && key > pos)) s[mt][n][e] = -INFINITY;
          }
        }
      }
    }
#pragma unroll
    for (int mt = 0; mt < kWarpTiles; ++mt) {
      flash::online_softmax(s[mt], o[mt], row_max[mt], row_sum[mt], p.scale_log2);
    }
    // O += P V, P (32, kBlockN) rounded to T.
#pragma unroll
    for (int kk = 0; kk < kBlockN / kMmaK; ++kk) {
      uint32_t pa[kWarpTiles][4];
#pragma unroll
      for (int mt = 0; mt < kWarpTiles; ++mt) {
        flash::scores_to_a<T>(pa[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
      }
#pragma unroll
      for (int d = 0; d < kOTiles / 2; ++d) {
        uint32_t vb[4];
        flash::ldmatrix_x4_trans(vb, v_tile + kk * kMmaK * kStride + d * 2 * kMmaN);
#pragma unroll
        for (int mt = 0; mt < kWarpTiles; ++mt) {
          flash::mma_16816<T>(o[mt][2 * d], pa[mt], vb[0], vb[1]);
          flash::mma_16816<T>(o[mt][2 * d + 1], pa[mt], vb[2], vb[3]);
        }
      }
      if constexpr (kOTiles % 2 != 0) {  // the last 8 columns alone (lanes 0-15: keys 0-15)
        uint32_t vb[2];
        flash::ldmatrix_x2_trans(vb, v_tile + kk * kMmaK * kStride + (kOTiles - 1) * kMmaN);
#pragma unroll
        for (int mt = 0; mt < kWarpTiles; ++mt) {
          flash::mma_16816<T>(o[mt][kOTiles - 1], pa[mt], vb[0], vb[1]);
        }
      }
    }
    flash::cp_async_wait<0>();
    __syncthreads();  // tile j+1 landed; everyone is done with stage j
  }

  // out = O / l for the rows that exist; columns past head_dim (padding) are not written.
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int mt = 0; mt < kWarpTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = flash::quad_sum(row_sum[mt][r]);
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      const int row = m0 + (warp * kWarpTiles + mt) * kMmaM + quad + r * 8;
      if (row >= seq.q_len) continue;
      // lse = ln Σ exp = (c·max + log2 l) · ln 2, once per row (dense only).
      if (Loader::kWritesLse && p.lse != nullptr && quad_lane == 0) {
        p.lse[(seq.q_row0 + row) * p.n_head + h] =
            sum > 0.0f ? (row_max[mt][r] * p.scale_log2 + log2f(sum)) * kLn2 : -INFINITY;
      }
      T* dst = out + (seq.q_row0 + row) * p.out_stride + static_cast<int64_t>(h) * p.head_dim;
#pragma unroll
      for (int n = 0; n < kOTiles; ++n) {
        const int col = n * kMmaN + 2 * quad_lane;
        if (col < p.head_dim) {
          *reinterpret_cast<uint32_t*>(dst + col) =
              flash::pack2<T>(o[mt][n][2 * r] * inv, o[mt][n][2 * r + 1] * inv);
        }
      }
    }
  }
}

// ---- launchers ----
// Whether to try the wgmma kernel: asked for, or kAuto unless VILA_FLASH_KERNEL=mma (read once).
bool use_wgmma(FlashKernel kernel) {
  static const bool mma_forced = [] {
    const char* env = std::getenv("VILA_FLASH_KERNEL");
    return env != nullptr && std::string(env) == "mma";
  }();
  return kernel == FlashKernel::kWgmma || (kernel == FlashKernel::kAuto && !mma_forced);
}

bool aligned16(const void* ptr) {
  return ptr != nullptr && reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

// Checks shared by both entry points; `what` names the op in the messages.
Status check_common(const char* what, const void* out, int64_t out_stride, const void* q,
                    int64_t q_stride, int batch, int n_head, int n_head_kv, int head_dim,
                    float scale) {
  const std::string op = what;
  if (flash::padded_head_dim(head_dim) == 0) {
    return unimplemented(op + ": head_dim " + std::to_string(head_dim) +
                         " unsupported (16, 32, 64, 72, 80, 96, 128)");
  }
  if (batch < 1 || batch > kMaxGridYZ) {
    return invalid_argument(op + ": batch " + std::to_string(batch) + " must be in [1, 65535]");
  }
  if (n_head < 1 || n_head_kv < 1 || n_head % n_head_kv != 0 || n_head > kMaxGridYZ) {
    return invalid_argument(op + ": n_head " + std::to_string(n_head) + " must be a positive " +
                            "multiple of n_head_kv " + std::to_string(n_head_kv));
  }
  if (!(scale > 0.0f) || !std::isfinite(scale)) {
    return invalid_argument(op + ": scale " + std::to_string(scale) + " must be positive");
  }
  const int64_t row = static_cast<int64_t>(n_head) * head_dim;
  if (out_stride < row || q_stride < row || out_stride % flash::kElemsPerCopy != 0 ||
      q_stride % flash::kElemsPerCopy != 0 || q_stride > kMaxRowStride) {
    return invalid_argument(op + ": q / out row strides " + std::to_string(q_stride) + " / " +
                            std::to_string(out_stride) +
                            " must be multiples of 8, >= " + std::to_string(row) + " and <= 2^23");
  }
  if (!aligned16(out) || !aligned16(q)) {
    return invalid_argument(op + ": q and out must be non-null and 16-byte aligned");
  }
  return {};
}

template <typename T, class Cfg, typename Loader>
Status launch_fwd(const FwdParams& p, int query_blocks, int batch, cudaStream_t stream) {
  constexpr size_t kSmemBytes = Cfg::kSmemElems * sizeof(T);
  const auto kernel = flash_fwd_kernel<T, Cfg, Loader>;
  VILA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const dim3 grid(static_cast<unsigned>(query_blocks), static_cast<unsigned>(p.n_head),
                  static_cast<unsigned>(batch));
  kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

// The instances, {bf16, f16} x {paged, dense} each: head dims 16 and 32 in a 32 tile, 64, 72 (in
// an 80 tile, computing 72 columns), 80 and 96 in a 96 tile, 128. Q stays in registers up to 72.
using Fwd32 = FwdConfig<32, 32, 64, 2, true>;
using Fwd64 = FwdConfig<64, 64, 64, 2, true>;
using Fwd72 = FwdConfig<80, 72, 64, 2, true>;
using Fwd96 = FwdConfig<96, 96, 64, 2, false>;
using Fwd128 = FwdConfig<128, 128, 64, 2, false>;

template <typename Loader>
Status dispatch_fwd(const char* what, const FwdParams& p, DType dtype, int query_blocks, int batch,
                    void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  VILA_DISPATCH_HALF(dtype, what, {
    switch (p.head_dim) {
      case 16:
      case 32:
        return launch_fwd<T, Fwd32, Loader>(p, query_blocks, batch, s);
      case 64:
        return launch_fwd<T, Fwd64, Loader>(p, query_blocks, batch, s);
      case 72:
        return launch_fwd<T, Fwd72, Loader>(p, query_blocks, batch, s);
      case 80:
      case 96:
        return launch_fwd<T, Fwd96, Loader>(p, query_blocks, batch, s);
      case 128:
        return launch_fwd<T, Fwd128, Loader>(p, query_blocks, batch, s);
      default:
        break;
    }
  });
  return unimplemented(std::string(what) + ": head_dim " + std::to_string(p.head_dim));
}

}  // namespace

Status flash_attention_paged(const PagedPrefillArgs& args, void* stream) {
  constexpr const char* kOp = "flash_attention_paged";
  const PagedKv& kv = args.kv;
  VILA_RETURN_IF_ERROR(check_common(kOp, args.out, args.out_row_stride, args.q, args.q_row_stride,
                                    args.batch, args.n_head, kv.n_head_kv, kv.head_dim,
                                    args.scale));
  if (args.max_q_len < 0) {
    return invalid_argument(std::string(kOp) + ": max_q_len " + std::to_string(args.max_q_len));
  }
  if (kv.max_pages < 1 || kv.block_table == nullptr || args.q_start == nullptr ||
      args.kv_len == nullptr) {
    return invalid_argument(std::string(kOp) + ": block_table, q_start and kv_len are required; " +
                            "max_pages " + std::to_string(kv.max_pages));
  }
  if (!aligned16(kv.k) || !aligned16(kv.v)) {
    return invalid_argument(std::string(kOp) + ": K and V pools must be 16-byte aligned");
  }
  if (args.max_q_len == 0) return {};
  const bool wgmma = use_wgmma(args.kernel) && flash_wgmma_supports(args);
  if (args.kernel == FlashKernel::kWgmma && !wgmma) {
    return unimplemented(std::string(kOp) + ": the wgmma kernel needs head_dim 128 and an sm_90 " +
                         "GPU in an sm_90a build");
  }
  FwdParams p;
  p.out = args.out;
  p.out_stride = args.out_row_stride;
  p.q = args.q;
  p.q_stride = args.q_row_stride;
  p.k = kv.k;
  p.v = kv.v;
  p.block_table = kv.block_table;
  p.max_pages = kv.max_pages;
  p.q_start = args.q_start;
  p.kv_len = args.kv_len;
  p.n_head = args.n_head;
  p.n_head_kv = kv.n_head_kv;
  p.group = args.n_head / kv.n_head_kv;
  p.head_dim = kv.head_dim;
  p.causal = true;
  p.scale_log2 = args.scale * kLog2e;
  if (wgmma) return flash_attention_paged_wgmma(p, args.dtype, args.max_q_len, args.batch, stream);
  return dispatch_fwd<PagedLoader>(kOp, p, args.dtype, ceil_div(args.max_q_len, kBlockM),
                                   args.batch, stream);
}

Status flash_attention_dense(const DenseAttentionArgs& args, void* stream) {
  constexpr const char* kOp = "flash_attention_dense";
  VILA_RETURN_IF_ERROR(check_common(kOp, args.out, args.out_row_stride, args.q, args.q_row_stride,
                                    args.batch, args.n_head, args.n_head_kv, args.head_dim,
                                    args.scale));
  const int64_t kv_row = static_cast<int64_t>(args.n_head_kv) * args.head_dim;
  if (args.k_row_stride < kv_row || args.v_row_stride < kv_row ||
      args.k_row_stride % flash::kElemsPerCopy != 0 ||
      args.v_row_stride % flash::kElemsPerCopy != 0 || args.k_row_stride > kMaxRowStride ||
      args.v_row_stride > kMaxRowStride || !aligned16(args.k) || !aligned16(args.v)) {
    return invalid_argument(std::string(kOp) + ": k / v need 16-byte aligned rows, strides " +
                            std::to_string(args.k_row_stride) + " / " +
                            std::to_string(args.v_row_stride) +
                            " multiples of 8 and >= " + std::to_string(kv_row));
  }
  if (args.seq < 0) {
    return invalid_argument(std::string(kOp) + ": seq " + std::to_string(args.seq));
  }
  if (args.seq == 0) return {};
  const bool wgmma = use_wgmma(args.kernel) && flash_wgmma_supports(args);
  if (args.kernel == FlashKernel::kWgmma && !wgmma) {
    return unimplemented(std::string(kOp) + ": the wgmma kernel needs head_dim 72, no causal " +
                         "mask, no lse and an sm_90 GPU in an sm_90a build");
  }
  FwdParams p;
  p.out = args.out;
  p.out_stride = args.out_row_stride;
  p.q = args.q;
  p.q_stride = args.q_row_stride;
  p.k = args.k;
  p.v = args.v;
  p.k_stride = args.k_row_stride;
  p.v_stride = args.v_row_stride;
  p.seq = args.seq;
  p.n_head = args.n_head;
  p.n_head_kv = args.n_head_kv;
  p.group = args.n_head / args.n_head_kv;
  p.head_dim = args.head_dim;
  p.causal = args.causal;
  p.scale_log2 = args.scale * kLog2e;
  p.lse = args.lse;
  if (wgmma) return flash_attention_dense_wgmma(p, args.dtype, args.batch, stream);
  return dispatch_fwd<DenseLoader>(kOp, p, args.dtype, ceil_div(args.seq, kBlockM), args.batch,
                                   stream);
}

}  // namespace vila::cuda
