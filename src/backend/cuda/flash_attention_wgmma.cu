// FlashAttention forward on Hopper warpgroup MMAs, for SigLIP's dense attention (full, head_dim
// 72), where the mma.sync kernel of flash_attention.cu stays near 250 TFLOP/s.
//
// A block of kWarpGroups = 4 warpgroups takes kBlockM = 256 query rows of one head, each
// warpgroup 64 of them. Per tile of kBlockN = 64 keys a warpgroup computes
//   S (64 x 64) = Q Kᵀ            wgmma m64n64k16, Q and K from shared memory, 5 k-steps
//                                 (72 columns + 8 zero columns: 80 = 5 x 16);
//   the online softmax            flash_mma.cuh's, in registers (the wgmma accumulator is laid
//                                 out like mma.sync C fragments, so the same code serves);
//   O (64 x 72) += P V            wgmma m64n72k16, P from registers (rounded to T), V read
//                                 N-major ("transposed") from shared memory, 4 k-steps.
// It issues S(j) and P(j-1)·V(j-1) back to back and exponentiates tile j while the tensor cores
// run P(j-1)·V(j-1).
//
// Why these choices (H100, 17 x 1024 tokens x 16 heads, docs/benchmarks.md "session 7"):
// - 256 query rows per block: each K/V tile is read from L2 once per query block, and at 128 rows
//   per block the kernel was L2-bound (Nsight Compute: L2 throughput 83-85 %, 236-241 TFLOP/s);
//   256 rows halve that traffic (277 TFLOP/s).
// - An mbarrier ring instead of a block barrier per tile (329 TFLOP/s): all threads copy K/V
//   tiles with cp.async into kStages = 6 stages, kAhead = 2 tiles ahead; a thread's copies count
//   on full[stage] once they land (cp.async.mbarrier.arrive.noinc), and a thread that is done
//   reading a stage arrives on empty[stage]. A thread only waits for the tile it needs and, before
//   refilling a stage, for everyone to have released it four tiles earlier, so the warpgroups
//   drift apart and one's softmax overlaps another's MMAs.
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
#include "backend/cuda/wgmma.cuh"

namespace vila::cuda {

namespace {

constexpr int kWarpGroups = 4;
constexpr int kThreads = kWarpGroups * 128;
constexpr int kBlockM = kWarpGroups * 64;  // query rows per block
constexpr int kBlockN = 64;                // keys per K / V tile
constexpr int kStages = 6;                 // K / V tiles resident in shared memory
constexpr int kAhead = 2;                  // tiles being loaded ahead of the one computed
// A stage is refilled kStages tiles after its last use; that tile is read until its P·V, one
// tile after its scores.
static_assert(kAhead >= 1 && kAhead <= kStages - 2, "the ring needs slack for P(j-1)·V(j-1)");
constexpr int kHeadDim = 72;  // the only head dim of this kernel (SigLIP)
constexpr int kChunks = 10;   // 16-byte chunks per shared row: 72 + 8 zero columns
// [[maybe_unused]]: only the kernel body, which the host pass does not see, reads these.
constexpr int kGroupElems = 8 * kChunks * flash::kElemsPerCopy;     // one 8-row group (640)
[[maybe_unused]] constexpr uint32_t kCoreBytes = 128;               // one 8x8 core matrix
[[maybe_unused]] constexpr uint32_t kGroupBytes = kGroupElems * 2;  // 1280
constexpr int kTileElems = kBlockN * kChunks * flash::kElemsPerCopy;
constexpr int kQElems = kBlockM * kChunks * flash::kElemsPerCopy;
constexpr size_t kSmemBytes = (kQElems + 2 * kStages * kTileElems) * 2;  // 16-bit elements
[[maybe_unused]] constexpr int kScoreSteps = kChunks / 2;                // Q·Kᵀ k-steps of 16
[[maybe_unused]] constexpr int kValueSteps = kBlockN / 16;               // P·V k-steps of 16
[[maybe_unused]] constexpr int kOTiles = kHeadDim / 8;
[[maybe_unused]] constexpr float kLog2e = 1.4426950408889634f;

// Copies rows 0 .. n_rows-1 (n_rows may exceed kRows) of a (kRows, 72) tile of 16-bit rows
// (stride in elements) into the core-matrix layout; the 8 chunks past column 72 and rows past
// n_rows are zero-filled. Thread idx fills row group idx / 80, chunk (idx / 8) % 10, row idx % 8.
template <int kRows, typename T>
__device__ __forceinline__ void load_rows(T* smem, const T* src, int stride, int n_rows, int tid) {
  constexpr int kCopies = kRows * kChunks;
#pragma unroll
  for (int it = 0; it < (kCopies + kThreads - 1) / kThreads; ++it) {
    const int idx = tid + it * kThreads;
    if (kCopies % kThreads != 0 && idx >= kCopies) break;
    const int r8 = idx % 8;
    const int c = idx / 8 % kChunks;
    const int r = idx / (8 * kChunks) * 8 + r8;
    const bool valid = r < n_rows && c * flash::kElemsPerCopy < kHeadDim;
    flash::cp_async_16(smem + idx / (8 * kChunks) * kGroupElems + c * 64 + r8 * 8,
                       src + (valid ? r * stride + c * flash::kElemsPerCopy : 0), valid);
  }
}

// Grid (query blocks, n_head, batch), kThreads threads. Shared memory: Q (kBlockM rows), then
// kStages stages of a K tile and a V tile (kBlockN rows each), all in the core-matrix layout.
template <typename T>
__global__ void __launch_bounds__(kThreads, 1) flash_wgmma_kernel(const DenseAttentionArgs p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the body exists in sm_90a code only
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ uint64_t full[kStages];   // phase n: the n-th tile of the stage landed
  __shared__ uint64_t empty[kStages];  // phase n: everyone is done with it
  T* s_q = reinterpret_cast<T*>(smem_raw);
  T* s_kv = s_q + kQElems;  // stage s: K tile at 2s, V tile at 2s + 1
  const int b = blockIdx.z;
  const int h = blockIdx.y;
  const int hk = h / (p.n_head / p.n_head_kv);
  const float scale_log2 = p.scale * kLog2e;
  const int m0 = blockIdx.x * kBlockM;
  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int warp = tid % 128 / 32;  // warp within the warpgroup: rows 16·warp .. +15 of its 64
  const int lane = tid % 32;
  const int quad_lane = lane % 4;
  const int64_t row0 = static_cast<int64_t>(b) * p.seq;  // first row of this sequence
  const auto k_stride = static_cast<int>(p.k_row_stride);
  const auto v_stride = static_cast<int>(p.v_row_stride);
  const T* k_src = static_cast<const T*>(p.k) + row0 * p.k_row_stride + hk * kHeadDim;
  const T* v_src = static_cast<const T*>(p.v) + row0 * p.v_row_stride + hk * kHeadDim;
  const int n_tiles = (p.seq + kBlockN - 1) / kBlockN;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      wgmma::mbar_init(&full[s], kThreads);
      wgmma::mbar_init(&empty[s], kThreads);
    }
  }
  __syncthreads();

  // Issues this thread's copies of tile j into stage j % kStages (after everyone released the
  // stage's previous tile); they count on full[stage] once landed.
  const auto load_kv = [&](int j) {
    if (j >= n_tiles) return;
    const int stage = j % kStages;
    if (j >= kStages) wgmma::mbar_wait(&empty[stage], (j / kStages - 1) & 1);
    const int key0 = j * kBlockN;
    T* dst = s_kv + 2 * stage * kTileElems;
    load_rows<kBlockN>(dst, k_src + int64_t{key0} * k_stride, k_stride, p.seq - key0, tid);
    load_rows<kBlockN>(dst + kTileElems, v_src + int64_t{key0} * v_stride, v_stride, p.seq - key0,
                       tid);
    wgmma::mbar_arrive_cp_async(&full[stage]);
  };
  load_rows<kBlockM>(s_q, static_cast<const T*>(p.q) + (row0 + m0) * p.q_row_stride + h * kHeadDim,
                     static_cast<int>(p.q_row_stride), p.seq - m0, tid);  // lands with tile 0
#pragma unroll
  for (int j = 0; j < kAhead; ++j) load_kv(j);
  // Waits for tile j (and makes it visible to the wgmma proxy), then starts loading j + kAhead.
  const auto next_tile = [&](int j) {
    wgmma::mbar_wait(&full[j % kStages], (j / kStages) & 1);
    wgmma::fence_proxy_async();
    load_kv(j + kAhead);
  };

  // Descriptors of k-step 0 (a step adds its byte offset >> 4 to the address field).
  const uint64_t q_desc = wgmma::smem_desc(s_q + wg * 8 * kGroupElems, kCoreBytes, kGroupBytes);
  const auto issue_scores = [&](float(&s)[kBlockN / 8][4], int j) {
    const uint64_t k_desc =
        wgmma::smem_desc(s_kv + 2 * (j % kStages) * kTileElems, kCoreBytes, kGroupBytes);
#pragma unroll
    for (int ks = 0; ks < kScoreSteps; ++ks) {
      const uint64_t step = 2 * kCoreBytes * ks >> 4;  // two 16-byte chunks per k-step
      wgmma::wgmma_ss<T, kBlockN>(s, q_desc + step, k_desc + step, ks > 0 ? 1 : 0);
    }
  };
  float o[kOTiles][4] = {};     // (64, 72) fp32 accumulator of this warpgroup
  uint32_t pa[kValueSteps][4];  // P of the last exponentiated tile, as A fragments
  const auto issue_values = [&](int j) {
    const uint64_t v_desc =
        wgmma::smem_desc(s_kv + (2 * (j % kStages) + 1) * kTileElems, kGroupBytes, kCoreBytes);
#pragma unroll
    for (int kk = 0; kk < kValueSteps; ++kk) {
      const uint64_t step = 2 * kGroupBytes * kk >> 4;  // 16 keys: two row groups
      wgmma::wgmma_rs_tn<T, kHeadDim>(o, pa[kk], v_desc + step, 1);
    }
  };
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};
  // Scores of tile j to probabilities, keys past the end (zero rows in shared memory) masked;
  // corr is the factor o must be rescaled by.
  const auto softmax = [&](float(&s)[kBlockN / 8][4], int j, float(&corr)[2]) {
    const int key0 = j * kBlockN;
    if (key0 + kBlockN > p.seq) {
#pragma unroll
      for (int n = 0; n < kBlockN / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (key0 + n * 8 + 2 * quad_lane + e % 2 >= p.seq) s[n][e] = -INFINITY;
        }
      }
    }
    flash::softmax_update(s, row_max, row_sum, scale_log2, corr);
  };
  const auto to_a = [&](const float(&s)[kBlockN / 8][4]) {
#pragma unroll
    for (int kk = 0; kk < kValueSteps; ++kk)
      flash::scores_to_a<T>(pa[kk], s[2 * kk], s[2 * kk + 1]);
  };

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

  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = flash::quad_sum(row_sum[r]);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = m0 + wg * 64 + warp * 16 + lane / 4 + r * 8;
    if (row >= p.seq) continue;
    T* dst = out + (row0 + row) * p.out_row_stride + h * kHeadDim;
#pragma unroll
    for (int n = 0; n < kOTiles; ++n) {
      *reinterpret_cast<uint32_t*>(dst + n * 8 + 2 * quad_lane) =
          flash::pack2<T>(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
  }
#endif
}

template <typename T>
Status launch(const DenseAttentionArgs& p, cudaStream_t stream) {
  const auto kernel = flash_wgmma_kernel<T>;
  VILA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const dim3 grid(static_cast<unsigned>(ceil_div(p.seq, kBlockM)), static_cast<unsigned>(p.n_head),
                  static_cast<unsigned>(p.batch));
  kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
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

}  // namespace

bool flash_wgmma_supports(const DenseAttentionArgs& args) {
#if defined(VILA_CUDA_WGMMA)
  // Row strides are <= 2^23 (flash_attention_dense checks), so tile offsets fit in int32.
  return args.head_dim == kHeadDim && !args.causal && args.lse == nullptr && device_is_hopper();
#else
  (void)args;
  return false;
#endif
}

Status flash_attention_dense_wgmma(const DenseAttentionArgs& args, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  VILA_DISPATCH_HALF(args.dtype, "flash_attention_dense_wgmma", { return launch<T>(args, s); });
}

}  // namespace vila::cuda
