// FlashAttention forward on Hopper warpgroup MMAs: SigLIP's dense attention (full, head_dim 72)
// and the LLM's paged causal prefill (head_dim 128, GQA), where the mma.sync kernel of
// flash_attention.cu stays near 230-250 TFLOP/s.
//
// A block of kWarpGroups warpgroups takes kBlockM = 64·kWarpGroups query rows of one head, each
// warpgroup 64 of them. Per tile of kBlockN = 64 keys a warpgroup computes
//   S (64 x 64) = Q Kᵀ            wgmma m64n64k16, Q and K from shared memory, kChunks / 2
//                                 k-steps (72 columns + 8 zero columns: 80 = 5 x 16);
//   the online softmax            flash_mma.cuh's, in registers (the wgmma accumulator is laid
//                                 out like mma.sync C fragments, so the same code serves);
//   O (64 x D) += P V             wgmma m64nDk16, P from registers (rounded to T), V read
//                                 N-major ("transposed") from shared memory, 4 k-steps.
// It issues S(j) and P(j-1)·V(j-1) back to back and exponentiates tile j while the tensor cores
// run P(j-1)·V(j-1). Keys come through flash_params.cuh's loaders (strided rows or KV pages), so
// a K/V tile is 64 rows of one KV head wherever they live; causal blocks stop at the tile of their
// last query, and only tiles that cross the diagonal or the end of the keys are masked.
//
// Why these choices (H100, 17 x 1024 tokens x 16 heads of 72, docs/benchmarks.md "session 7"):
// - 256 query rows per block at head dim 72: each K/V tile is read from L2 once per query
//   block, and at 128 rows per block the kernel was L2-bound (Nsight Compute: L2 throughput
//   83-85 %, 236-241 TFLOP/s); 256 rows halve that traffic (277 TFLOP/s). Head dim 128 needs 64
//   more accumulator registers per thread, so its blocks are 3 warpgroups (192 rows).
// - An mbarrier ring instead of a block barrier per tile (329 TFLOP/s): all threads copy K/V
//   tiles with cp.async into kStages stages, kAhead = 2 tiles ahead; a thread's copies count on
//   full[stage] once they land (cp.async.mbarrier.arrive.noinc), and a thread that is done
//   reading a stage arrives on empty[stage]. A thread only waits for the tile it needs and, before
//   refilling a stage, for everyone to have released it kStages - kAhead tiles earlier, so the
//   warpgroups drift apart and one's softmax overlaps another's MMAs.
// Shared-memory tiles use wgmma.cuh's no-swizzle core-matrix layout: row r, 16-byte chunk c of a
// tile sits at (r/8)·kGroupElems + c·64 + (r%8)·8 elements, so one cp.async is one core-matrix
// row, 8 consecutive threads fill one 128-byte core matrix, and the descriptors step by whole core
// matrices: Q / K (K-major): LBO 128 B (next chunk), SBO one row group; V (N-major): SBO 128 B
// (next 8 channels), LBO one row group (next 8 keys).
#include <cmath>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/flash_attention_wgmma.h"
#include "backend/cuda/flash_mma.cuh"
#include "backend/cuda/flash_params.cuh"
#include "backend/cuda/wgmma.cuh"

// Only the kernel body reads most constants below, and nvcc's host pass does not see it: no
// "declared but never referenced" warnings for them.
#pragma nv_diag_suppress 177

namespace vila::cuda {

namespace {

using flash::DenseLoader;
using flash::FwdParams;
using flash::PagedLoader;
using flash::SeqInfo;

constexpr int kBlockN = 64;           // keys per K / V tile (the KV page size)
constexpr int kAhead = 2;             // tiles being loaded ahead of the one computed
constexpr uint32_t kCoreBytes = 128;  // one 8x8 core matrix of 16-bit elements
static_assert(kBlockN == kKvPageSize, "a paged K/V tile is one page");

// The compile-time shape of an instance: the head dim, warpgroups per block and K/V stages (as
// many as fit next to the Q tile in shared memory). Shared rows hold kChunks 16-byte chunks: the
// head dim rounded up to 16 columns, the padding zero-filled.
template <int kHeadDim_, int kWarpGroups_, int kStages_>
struct Shape {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarpGroups = kWarpGroups_;
  static constexpr int kStages = kStages_;
  static constexpr int kThreads = kWarpGroups * 128;
  static constexpr int kBlockM = kWarpGroups * 64;  // query rows per block
  static constexpr int kChunks = (kHeadDim + 15) / 16 * 2;
  static constexpr int kGroupElems = 8 * kChunks * flash::kElemsPerCopy;  // one 8-row group
  static constexpr uint32_t kGroupBytes = kGroupElems * 2;
  static constexpr int kTileElems = kBlockN * kChunks * flash::kElemsPerCopy;
  static constexpr int kQElems = kBlockM * kChunks * flash::kElemsPerCopy;
  static constexpr size_t kSmemBytes = (kQElems + 2 * kStages * kTileElems) * 2;
  static constexpr int kScoreSteps = kChunks / 2;   // Q·Kᵀ k-steps of 16
  static constexpr int kValueSteps = kBlockN / 16;  // P·V k-steps of 16
  static constexpr int kOTiles = kHeadDim / 8;
  // A stage is refilled kStages tiles after its last use; that tile is read until its P·V, one
  // tile after its scores.
  static_assert(kAhead <= kStages - 2, "the ring needs slack for P(j-1)·V(j-1)");
  static_assert(kHeadDim % 8 == 0 && kSmemBytes <= 227 * 1024, "shape");
};
using SiglipShape = Shape<72, 4, 6>;  // 4 x 64 rows; 40 + 6 x 20 KB of shared memory
using LlmShape = Shape<128, 3, 5>;    // 3 x 64 rows (168 registers a thread); 48 + 5 x 32 KB

// Copies rows 0 .. n_rows-1 (n_rows may exceed kRows) of a (kRows, head_dim) tile of 16-bit rows
// (stride in elements) into the core-matrix layout; the chunks past the head dim and rows past
// n_rows are zero-filled. Thread idx fills row group idx / (8 kChunks), chunk (idx / 8) % kChunks,
// row idx % 8.
template <class Sh, int kRows, typename T>
__device__ __forceinline__ void load_rows(T* smem, const T* src, int stride, int n_rows, int tid) {
  constexpr int kCopies = kRows * Sh::kChunks;
#pragma unroll
  for (int it = 0; it < (kCopies + Sh::kThreads - 1) / Sh::kThreads; ++it) {
    const int idx = tid + it * Sh::kThreads;
    if (kCopies % Sh::kThreads != 0 && idx >= kCopies) break;
    const int r8 = idx % 8;
    const int c = idx / 8 % Sh::kChunks;
    const int r = idx / (8 * Sh::kChunks) * 8 + r8;
    const bool valid = r < n_rows && c * flash::kElemsPerCopy < Sh::kHeadDim;
    flash::cp_async_16(smem + idx / (8 * Sh::kChunks) * Sh::kGroupElems + c * 64 + r8 * 8,
                       src + (valid ? r * stride + c * flash::kElemsPerCopy : 0), valid);
  }
}

// Grid (query blocks, n_head, batch), Sh::kThreads threads; blockIdx.x counts query blocks from
// the last one, so the longest causal blocks start first. kCausal (p.causal is not read): the
// query at position i sees keys 0..i. Shared memory: Q (kBlockM rows), then
// kStages stages of a K tile and a V tile (kBlockN rows each), all in the core-matrix layout.
template <typename T, class Sh, typename Loader, bool kCausal>
__global__ void __launch_bounds__(Sh::kThreads, 1) flash_wgmma_kernel(const FwdParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the body exists in sm_90a code only
  constexpr int kStages = Sh::kStages;
  constexpr int kBlockM = Sh::kBlockM;
  constexpr int kTileElems = Sh::kTileElems;
  constexpr uint32_t kGroupBytes = Sh::kGroupBytes;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ uint64_t full[kStages];   // phase n: the n-th tile of the stage landed
  __shared__ uint64_t empty[kStages];  // phase n: everyone is done with it
  T* s_q = reinterpret_cast<T*>(smem_raw);
  T* s_kv = s_q + Sh::kQElems;  // stage s: K tile at 2s, V tile at 2s + 1
  const int b = blockIdx.z;
  const int h = blockIdx.y;
  const int m0 = (gridDim.x - 1 - blockIdx.x) * kBlockM;
  const SeqInfo seq = Loader::sequence(p, b);
  if (m0 >= seq.q_len) return;
  const int hk = h / p.group;
  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int warp = tid % 128 / 32;  // warp within the warpgroup: rows 16·warp .. +15 of its 64
  const int lane = tid % 32;
  const int quad_lane = lane % 4;
  const int pos_offset = seq.kv_len - seq.q_len;  // position of query row 0
  // Keys this block reads: all of them, or up to the position of its last row when causal.
  int kv_end = seq.kv_len;
  if (kCausal) kv_end = min(kv_end, pos_offset + min(m0 + kBlockM, seq.q_len));
  const int n_tiles = kv_end > 0 ? (kv_end + kBlockN - 1) / kBlockN : 0;
  const int wg_pos0 = pos_offset + m0 + wg * 64;  // position of this warpgroup's first row
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      wgmma::mbar_init(&full[s], Sh::kThreads);
      wgmma::mbar_init(&empty[s], Sh::kThreads);
    }
  }
  __syncthreads();

  // Issues this thread's copies of tile j into stage j % kStages (after everyone released the
  // stage's previous tile); they count on full[stage] once landed.
  const auto load_kv = [&](int j) {
    if (j >= n_tiles) return;
    const int stage = j % kStages;
    if (j >= kStages) wgmma::mbar_wait(&empty[stage], (j / kStages - 1) & 1);
    const int rows = seq.kv_len - j * kBlockN;
    T* dst = s_kv + 2 * stage * kTileElems;
    load_rows<Sh, kBlockN>(dst, Loader::template k_tile<T, kBlockN>(p, b, hk, j),
                           static_cast<int>(Loader::k_stride(p)), rows, tid);
    load_rows<Sh, kBlockN>(dst + kTileElems, Loader::template v_tile<T, kBlockN>(p, b, hk, j),
                           static_cast<int>(Loader::v_stride(p)), rows, tid);
    wgmma::mbar_arrive_cp_async(&full[stage]);
  };
  load_rows<Sh, kBlockM>(s_q,
                         static_cast<const T*>(p.q) + (seq.q_row0 + m0) * p.q_stride +
                             static_cast<int64_t>(h) * p.head_dim,
                         static_cast<int>(p.q_stride), seq.q_len - m0, tid);  // lands with tile 0
#pragma unroll
  for (int j = 0; j < kAhead; ++j) load_kv(j);
  // Waits for tile j (and makes it visible to the wgmma proxy), then starts loading j + kAhead.
  const auto next_tile = [&](int j) {
    wgmma::mbar_wait(&full[j % kStages], (j / kStages) & 1);
    wgmma::fence_proxy_async();
    load_kv(j + kAhead);
  };

  // Descriptors of k-step 0 (a step adds its byte offset >> 4 to the address field).
  const uint64_t q_desc = wgmma::smem_desc(s_q + wg * 8 * Sh::kGroupElems, kCoreBytes, kGroupBytes);
  const auto issue_scores = [&](float(&s)[kBlockN / 8][4], int j) {
    const uint64_t k_desc =
        wgmma::smem_desc(s_kv + 2 * (j % kStages) * kTileElems, kCoreBytes, kGroupBytes);
#pragma unroll
    for (int ks = 0; ks < Sh::kScoreSteps; ++ks) {
      const uint64_t step = 2 * kCoreBytes * ks >> 4;  // two 16-byte chunks per k-step
      wgmma::wgmma_ss<T, kBlockN>(s, q_desc + step, k_desc + step, ks > 0 ? 1 : 0);
    }
  };
  float o[Sh::kOTiles][4] = {};     // (64, D) fp32 accumulator of this warpgroup
  uint32_t pa[Sh::kValueSteps][4];  // P of the last exponentiated tile, as A fragments
  const auto issue_values = [&](int j) {
    const uint64_t v_desc =
        wgmma::smem_desc(s_kv + (2 * (j % kStages) + 1) * kTileElems, kGroupBytes, kCoreBytes);
#pragma unroll
    for (int kk = 0; kk < Sh::kValueSteps; ++kk) {
      const uint64_t step = 2 * kGroupBytes * kk >> 4;  // 16 keys: two row groups
      wgmma::wgmma_rs_tn<T, Sh::kHeadDim>(o, pa[kk], v_desc + step, 1);
    }
  };
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};
  // Scores of tile j to probabilities, keys past the end (zero rows in shared memory) and, when
  // causal, past each row's position masked; corr is the factor o must be rescaled by.
  const auto softmax = [&](float(&s)[kBlockN / 8][4], int j, float(&corr)[2]) {
    const int key0 = j * kBlockN;
    if (key0 + kBlockN > seq.kv_len || (kCausal && key0 + kBlockN - 1 > wg_pos0)) {
#pragma unroll
      for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = key0 + n * 8 + 2 * quad_lane + e % 2;
          const int pos = wg_pos0 + warp * 16 + lane / 4 + e / 2 * 8;
          if (key >= seq.kv_len || (kCausal && key > pos)) s[n][e] = -INFINITY;
        }
      }
    }
    flash::softmax_update(s, row_max, row_sum, p.scale_log2, corr);
  };
  const auto to_a = [&](const float(&s)[kBlockN / 8][4]) {
#pragma unroll
    for (int kk = 0; kk < Sh::kValueSteps; ++kk) {
      flash::scores_to_a<T>(pa[kk], s[2 * kk], s[2 * kk + 1]);
    }
  };

  if (n_tiles > 0) {
    {  // tile 0: scores only
      next_tile(0);
      float s[kBlockN / 8][4];
      float corr[2];
      wgmma::fence();
      issue_scores(s, 0);
      wgmma::commit();
      wgmma::wait<0>();
      wgmma::fence_operands(s);
      softmax(s, 0, corr);  // o is still zero
      to_a(s);
    }
    for (int j = 1; j < n_tiles; ++j) {
      next_tile(j);
      float s[kBlockN / 8][4];  // (64, kBlockN) scores of this warpgroup
      float corr[2];
      wgmma::fence();
      issue_scores(s, j);
      wgmma::commit();
      issue_values(j - 1);
      wgmma::commit();
      wgmma::wait<1>();  // S(j) done; P(j-1)·V(j-1) may still run
      wgmma::fence_operands(s);
      softmax(s, j, corr);
      wgmma::wait<0>();  // P(j-1)·V(j-1) done: o and pa are free, and so is tile j-1
      wgmma::fence_operands(o);
      wgmma::mbar_arrive(&empty[(j - 1) % kStages]);
      flash::rescale_rows(o, corr);
      to_a(s);
    }
    wgmma::fence();
    issue_values(n_tiles - 1);
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::fence_operands(o);
  }

  // out = O / l for the rows that exist (rows with no key write zeros).
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = flash::quad_sum(row_sum[r]);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = m0 + wg * 64 + warp * 16 + lane / 4 + r * 8;
    if (row >= seq.q_len) continue;
    T* dst = out + (seq.q_row0 + row) * p.out_stride + static_cast<int64_t>(h) * p.head_dim;
#pragma unroll
    for (int n = 0; n < Sh::kOTiles; ++n) {
      *reinterpret_cast<uint32_t*>(dst + n * 8 + 2 * quad_lane) =
          flash::pack2<T>(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
  }
#endif
}

template <typename T, class Sh, typename Loader, bool kCausal>
Status launch(const FwdParams& p, int query_blocks, int batch, cudaStream_t stream) {
  const auto kernel = flash_wgmma_kernel<T, Sh, Loader, kCausal>;
  VILA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Sh::kSmemBytes));
  const dim3 grid(static_cast<unsigned>(query_blocks), static_cast<unsigned>(p.n_head),
                  static_cast<unsigned>(batch));
  kernel<<<grid, Sh::kThreads, Sh::kSmemBytes, stream>>>(p);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

bool device_is_hopper() {
  int device = 0;
  int major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    return false;
  }
  return major == 9;
}

bool wgmma_built() {
#if defined(VILA_CUDA_WGMMA)
  return true;
#else
  return false;
#endif
}

}  // namespace

bool flash_wgmma_supports(const DenseAttentionArgs& args) {
  // Row strides are <= 2^23 (flash_attention_dense checks), so tile offsets fit in int32.
  return wgmma_built() && args.head_dim == SiglipShape::kHeadDim && !args.causal &&
         args.lse == nullptr && device_is_hopper();
}

bool flash_wgmma_supports(const PagedPrefillArgs& args) {
  return wgmma_built() && args.kv.head_dim == LlmShape::kHeadDim && device_is_hopper();
}

Status flash_attention_dense_wgmma(const FwdParams& p, DType dtype, int batch, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const int blocks = ceil_div(p.seq, SiglipShape::kBlockM);
  VILA_DISPATCH_HALF(dtype, "flash_attention_dense_wgmma",
                     { return launch<T, SiglipShape, DenseLoader, false>(p, blocks, batch, s); });
}

Status flash_attention_paged_wgmma(const FwdParams& p, DType dtype, int max_q_len, int batch,
                                   void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const int blocks = ceil_div(max_q_len, LlmShape::kBlockM);
  VILA_DISPATCH_HALF(dtype, "flash_attention_paged_wgmma",
                     { return launch<T, LlmShape, PagedLoader, true>(p, blocks, batch, s); });
}

}  // namespace vila::cuda
