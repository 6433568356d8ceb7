// Flash-decoding: one query row per sequence (the LLM's decode step) against its paged KV cache.
//
// out_h = Σ_j softmax_j(scale · q_h · k_j) v_j over keys j < kv_len[b], query head h reading KV
// head h / group. The keys are cut into splits of kSplitKeys (two pages); block (split, KV head,
// sequence) takes the split for up to 16 query heads of that KV head at once, so every K/V row is
// read from global memory once per step. The heads are the 16 rows of an m16n8k16 MMA tile
// (padding rows are zero): per page each warp scores 16 of its keys, S = Q Kᵀ, runs the online
// softmax in the log2 domain (c = scale · log2 e) and accumulates O += P V, as in
// flash_attention.cu. The four warps merge in shared memory, and the block writes its fp32
// partial (m = max c·s, l = Σ 2^(c·s − m), o = Σ 2^(c·s − m) v) to the workspace. A second kernel
// combines the splits of each (sequence, head), launched as a programmatic dependent of the first
// (its blocks are scheduled while the first drains):
//   M = max_s m_s,  out = Σ_s 2^(m_s − M) o_s / Σ_s 2^(m_s − M) l_s,
// in the compute dtype. With a single split (max_kv_len <= kSplitKeys) the first kernel writes out
// directly. The grid depends only on max_kv_len; kv_len is read on the device (blocks past it exit
// at once), so a captured CUDA graph replays for any lengths up to max_kv_len.
#include <cmath>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/flash_mma.cuh"

namespace vila::cuda {

namespace {

using flash::kMmaK;
using flash::kMmaM;
using flash::kMmaN;
using flash::kSmemPad;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kSplitPages = 2;                         // pages per block, all in flight at once
constexpr int kSplitKeys = kSplitPages * kKvPageSize;  // 128 keys per split
constexpr int kHeadsPerBlock = kMmaM;                  // query heads per block = MMA rows
constexpr int kWarpKeys = kKvPageSize / kWarps;        // keys of every page one warp scores
constexpr int kCombineWarps = 8;
constexpr int kCombineThreads = kCombineWarps * 32;
constexpr int kCombineCols = 4;  // columns per lane (one float4); head_dim <= 32 * 4
constexpr int kMaxGridYZ = 65535;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kWarpKeys == kMmaK, "one P·V step per warp and page");
static_assert(kSplitPages <= 4, "cp_async_wait_at_most handles up to 3 pending groups");

struct DecodeParams {
  void* out = nullptr;
  int64_t out_stride = 0;
  const void* q = nullptr;
  int64_t q_stride = 0;
  const void* k = nullptr;  // page pools (num_pages, Hkv, kKvPageSize, head_dim)
  const void* v = nullptr;
  const int32_t* block_table = nullptr;  // (batch, max_pages)
  int max_pages = 0;
  const int32_t* kv_len = nullptr;  // (batch)
  int max_kv_len = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int group = 1;        // n_head / n_head_kv
  int head_chunks = 1;  // ceil(group / kHeadsPerBlock)
  int head_dim = 0;
  float scale_log2 = 0.0f;
  int n_splits = 1;
  float* ws_acc = nullptr;    // (batch, n_head, n_splits, head_dim) unnormalised o
  float* ws_stats = nullptr;  // (batch, n_head, n_splits, 2): m (log2 units), l
};

__device__ __forceinline__ int clamped_kv_len(const DecodeParams& p, int b) {
  return max(0, min(p.kv_len[b], p.max_kv_len));
}

__device__ __forceinline__ void cp_async_wait_at_most(int pending) {
  switch (pending) {
    case 0:
      flash::cp_async_wait<0>();
      break;
    case 1:
      flash::cp_async_wait<1>();
      break;
    case 2:
      flash::cp_async_wait<2>();
      break;
    default:
      flash::cp_async_wait<3>();
      break;
  }
}

// ---- kernels ----
// Grid (n_splits, n_head_kv * head_chunks, batch). Shared memory: Q (kHeadsPerBlock, kStride),
// then K and V pages (kSplitPages, kKvPageSize, kStride) each; after the last page the K/V area
// holds the warps' partials (kWarps, kHeadsPerBlock, kStride) fp32 and their m, l.
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(const DecodeParams p) {
  constexpr int kStride = kD + kSmemPad;
  constexpr int kPageElems = kKvPageSize * kStride;
  constexpr int kOTiles = kD / kMmaN;
  constexpr int kRows = kWarps * kHeadsPerBlock;  // partial rows, one set per warp
  static_assert(kRows * kStride * 4 + 2 * kRows * 4 <= 2 * kSplitPages * kPageElems * 2,
                "the partials fit in the K/V area");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_q = reinterpret_cast<T*>(smem_raw);
  T* s_k = s_q + kHeadsPerBlock * kStride;
  T* s_v = s_k + kSplitPages * kPageElems;
  float* s_o = reinterpret_cast<float*>(s_k);  // (kWarps, kHeadsPerBlock, kStride)
  float* s_max = s_o + kRows * kStride;        // (kWarps, kHeadsPerBlock), log2 units
  float* s_sum = s_max + kRows;                // (kWarps, kHeadsPerBlock)

  const int split = blockIdx.x;
  const int hk = blockIdx.y / p.head_chunks;
  const int h0 = hk * p.group + blockIdx.y % p.head_chunks * kHeadsPerBlock;  // first query head
  const int n_heads = min(kHeadsPerBlock, (hk + 1) * p.group - h0);
  const int b = blockIdx.z;
  const int kv_len = clamped_kv_len(p, b);
  const int key0 = split * kSplitKeys;
  // The combine kernel may be scheduled once every block got here; it still waits for our results.
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  if (key0 >= kv_len) return;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;

  // One cp.async group per page (Q rides with page 0), all issued before any compute.
  const T* q_src = static_cast<const T*>(p.q) + static_cast<int64_t>(b) * p.q_stride +
                   static_cast<int64_t>(h0) * p.head_dim;
  flash::load_tile_async<kHeadsPerBlock, kD, kThreads>(s_q, q_src, p.head_dim, n_heads, p.head_dim,
                                                       tid);
  const int32_t* pages =
      p.block_table + static_cast<int64_t>(b) * p.max_pages + split * kSplitPages;
#pragma unroll
  for (int i = 0; i < kSplitPages; ++i) {
    const int rows = min(kKvPageSize, kv_len - key0 - i * kKvPageSize);
    if (rows > 0) {
      const int64_t offset =
          (static_cast<int64_t>(pages[i]) * p.n_head_kv + hk) * kKvPageSize * p.head_dim;
      flash::load_tile_async<kKvPageSize, kD, kThreads>(s_k + i * kPageElems,
                                                        static_cast<const T*>(p.k) + offset,
                                                        p.head_dim, rows, p.head_dim, tid);
      flash::load_tile_async<kKvPageSize, kD, kThreads>(s_v + i * kPageElems,
                                                        static_cast<const T*>(p.v) + offset,
                                                        p.head_dim, rows, p.head_dim, tid);
    }
    flash::cp_async_commit();
  }

  uint32_t q_frag[kD / kMmaK][4];  // (kHeadsPerBlock, kD) as A fragments
  float o[kOTiles][4] = {};        // (kHeadsPerBlock, kD) fp32 of this warp's keys
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};
  const int quad = lane / 4;
  const int quad_lane = lane % 4;
#pragma unroll
  for (int i = 0; i < kSplitPages; ++i) {
    const int page_key0 = key0 + i * kKvPageSize;
    if (page_key0 >= kv_len) break;  // uniform over the block
    cp_async_wait_at_most(kSplitPages - 1 - i);
    __syncthreads();
    if (i == 0) flash::load_a_fragments<kD>(q_frag, s_q, 0, lane);
    float s[2][4] = {};  // (kHeadsPerBlock, kWarpKeys) scores
    flash::mma_a_bt<kD, 1>(s, q_frag, s_k + i * kPageElems, warp * kWarpKeys, lane);
    if (page_key0 + kKvPageSize > kv_len) {
#pragma unroll
      for (int n = 0; n < 2; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = page_key0 + warp * kWarpKeys + n * kMmaN + 2 * quad_lane + e % 2;
          if (key >= kv_len) s[n][e] = -INFINITY;
        }
      }
    }
    flash::online_softmax(s, o, row_max, row_sum, p.scale_log2);
    uint32_t a[4];
    flash::scores_to_a<T>(a, s[0], s[1]);
    flash::mma_p_v<kD>(o, a, s_v + i * kPageElems, warp * kWarpKeys, lane);
  }
  flash::cp_async_wait<0>();
  __syncthreads();  // every warp is done with K/V: the area now takes the partials

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * kHeadsPerBlock + quad + r * 8;
    const float sum = flash::quad_sum(row_sum[r]);
    if (quad_lane == 0) {
      s_max[row] = row_max[r] == -INFINITY ? -INFINITY : row_max[r] * p.scale_log2;
      s_sum[row] = sum;
    }
#pragma unroll
    for (int n = 0; n < kOTiles; ++n) {
      *reinterpret_cast<float2*>(s_o + row * kStride + n * kMmaN + 2 * quad_lane) =
          make_float2(o[n][2 * r], o[n][2 * r + 1]);
    }
  }
  __syncthreads();

  // Merge the warps per (head, column); a single split writes out, otherwise the workspace.
  for (int idx = tid; idx < n_heads * p.head_dim; idx += kThreads) {
    const int head = idx / p.head_dim;
    const int col = idx % p.head_dim;
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, s_max[w * kHeadsPerBlock + head]);
    float l = 0.0f;
    float acc = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float mw = s_max[w * kHeadsPerBlock + head];
      const float weight = mw == -INFINITY ? 0.0f : flash::fast_exp2(mw - m);
      l += weight * s_sum[w * kHeadsPerBlock + head];
      acc += weight * s_o[(w * kHeadsPerBlock + head) * kStride + col];
    }
    const int h = h0 + head;
    if (p.n_splits == 1) {
      T* dst = static_cast<T*>(p.out) + static_cast<int64_t>(b) * p.out_stride +
               static_cast<int64_t>(h) * p.head_dim;
      dst[col] = from_float<T>(l > 0.0f ? acc / l : 0.0f);
    } else {
      const int64_t part = (static_cast<int64_t>(b) * p.n_head + h) * p.n_splits + split;
      p.ws_acc[part * p.head_dim + col] = acc;
      if (col == 0) {
        p.ws_stats[2 * part] = m;
        p.ws_stats[2 * part + 1] = l;
      }
    }
  }
}

// Grid (n_head, batch): merges the splits 0 .. ceil(kv_len/kSplitKeys)-1 of one (sequence, head).
// Launched as a programmatic dependent of the split kernel: it may start while that one drains and
// waits (griddepcontrol.wait) until its results are visible. Warp w takes splits w, w + 8, ...;
// lane l holds columns 4l .. 4l+3 (head_dim <= 128) as one float4.
template <typename T>
__global__ void __launch_bounds__(kCombineThreads) decode_combine_kernel(const DecodeParams p) {
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  __shared__ float s_red[kCombineWarps];
  __shared__ float4 s_acc[kCombineWarps][32];
  const int h = blockIdx.x;
  const int b = blockIdx.y;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int n_valid = (clamped_kv_len(p, b) + kSplitKeys - 1) / kSplitKeys;
  const int64_t part0 = (static_cast<int64_t>(b) * p.n_head + h) * p.n_splits;
  const float* stats = p.ws_stats + 2 * part0;

  // M = max_s m_s over the block.
  float m = -INFINITY;
  for (int s = tid; s < n_valid; s += kCombineThreads) m = fmaxf(m, stats[2 * s]);
  for (int offset = 16; offset > 0; offset /= 2) {
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  }
  if (lane == 0) s_red[warp] = m;
  __syncthreads();
  m = -INFINITY;
#pragma unroll
  for (int w = 0; w < kCombineWarps; ++w) m = fmaxf(m, s_red[w]);
  __syncthreads();  // s_red is reused for l below

  const int col = lane * kCombineCols;
  const bool active = col < p.head_dim;
  const float* acc = p.ws_acc + part0 * p.head_dim + col;
  float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float l = 0.0f;
#pragma unroll 4
  for (int s = warp; s < n_valid; s += kCombineWarps) {
    const float weight = flash::fast_exp2(stats[2 * s] - m);
    l += weight * stats[2 * s + 1];
    if (active) {
      const float4 a = *reinterpret_cast<const float4*>(acc + static_cast<int64_t>(s) * p.head_dim);
      o.x += weight * a.x;
      o.y += weight * a.y;
      o.z += weight * a.z;
      o.w += weight * a.w;
    }
  }
  s_acc[warp][lane] = o;
  if (lane == 0) s_red[warp] = l;
  __syncthreads();
  if (warp != 0 || !active) return;
  l = 0.0f;
  o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int w = 0; w < kCombineWarps; ++w) {
    l += s_red[w];
    o.x += s_acc[w][lane].x;
    o.y += s_acc[w][lane].y;
    o.z += s_acc[w][lane].z;
    o.w += s_acc[w][lane].w;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  T* dst = static_cast<T*>(p.out) + static_cast<int64_t>(b) * p.out_stride +
           static_cast<int64_t>(h) * p.head_dim + col;
  dst[0] = from_float<T>(o.x * inv);
  dst[1] = from_float<T>(o.y * inv);
  dst[2] = from_float<T>(o.z * inv);
  dst[3] = from_float<T>(o.w * inv);
}

// ---- launchers ----
int64_t split_count(int max_kv_len) {
  return (static_cast<int64_t>(max_kv_len) + kSplitKeys - 1) / kSplitKeys;
}

bool aligned16(const void* ptr) {
  return ptr != nullptr && reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

template <typename T, int kD>
Status launch_decode(const DecodeParams& p, int batch, cudaStream_t stream) {
  constexpr size_t kSmemBytes =
      (kHeadsPerBlock + 2 * kSplitPages * kKvPageSize) * (kD + kSmemPad) * sizeof(T);
  const auto kernel = decode_split_kernel<T, kD>;
  VILA_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  const dim3 grid(static_cast<unsigned>(p.n_splits),
                  static_cast<unsigned>(p.n_head_kv * p.head_chunks), static_cast<unsigned>(batch));
  kernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
  VILA_CUDA_CHECK(cudaGetLastError());
  if (p.n_splits > 1) {
    // Programmatic dependent launch: the combine blocks are scheduled as the split kernel drains.
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(static_cast<unsigned>(p.n_head), static_cast<unsigned>(batch));
    config.blockDim = dim3(kCombineThreads);
    config.stream = stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = 1;
    VILA_CUDA_CHECK(cudaLaunchKernelEx(&config, decode_combine_kernel<T>, p));
  }
  return {};
}

}  // namespace

size_t decode_attention_workspace_bytes(int batch, int n_head, int head_dim, int max_kv_len) {
  if (batch <= 0 || n_head <= 0 || head_dim <= 0 || max_kv_len <= 0) return 0;
  const int64_t n_splits = split_count(max_kv_len);
  if (n_splits == 1) return 0;  // the split kernel writes out directly
  return static_cast<size_t>(batch) * static_cast<size_t>(n_head) * static_cast<size_t>(n_splits) *
         static_cast<size_t>(head_dim + 2) * sizeof(float);
}

Status decode_attention_paged(const PagedDecodeArgs& args, void* stream) {
  const std::string op = "decode_attention_paged";
  const PagedKv& kv = args.kv;
  if (flash::padded_head_dim(kv.head_dim) == 0) {
    return unimplemented(op + ": head_dim " + std::to_string(kv.head_dim) +
                         " unsupported (16, 32, 64, 72, 80, 96, 128)");
  }
  if (args.batch < 1 || args.batch > kMaxGridYZ) {
    return invalid_argument(op + ": batch " + std::to_string(args.batch) +
                            " must be in [1, 65535]");
  }
  if (args.n_head < 1 || kv.n_head_kv < 1 || args.n_head % kv.n_head_kv != 0) {
    return invalid_argument(op + ": n_head " + std::to_string(args.n_head) +
                            " must be a positive multiple of n_head_kv " +
                            std::to_string(kv.n_head_kv));
  }
  const int group = args.n_head / kv.n_head_kv;
  const int head_chunks = (group + kHeadsPerBlock - 1) / kHeadsPerBlock;
  if (static_cast<int64_t>(kv.n_head_kv) * head_chunks > kMaxGridYZ) {
    return invalid_argument(op + ": too many heads: " + std::to_string(args.n_head));
  }
  if (args.max_kv_len < 1 || static_cast<int64_t>(kv.max_pages) * kKvPageSize < args.max_kv_len) {
    return invalid_argument(op + ": max_kv_len " + std::to_string(args.max_kv_len) +
                            " must be >= 1 and fit max_pages " + std::to_string(kv.max_pages) +
                            " pages");
  }
  if (!(args.scale > 0.0f) || !std::isfinite(args.scale)) {
    return invalid_argument(op + ": scale " + std::to_string(args.scale) + " must be positive");
  }
  const int64_t row = static_cast<int64_t>(args.n_head) * kv.head_dim;
  if (args.q_row_stride < row || args.q_row_stride % flash::kElemsPerCopy != 0 ||
      args.out_row_stride < row) {
    return invalid_argument(op + ": q / out row strides " + std::to_string(args.q_row_stride) +
                            " / " + std::to_string(args.out_row_stride) +
                            " must be >= " + std::to_string(row) + " (q: a multiple of 8)");
  }
  if (!aligned16(args.q) || !aligned16(kv.k) || !aligned16(kv.v) || args.out == nullptr ||
      kv.block_table == nullptr || args.kv_len == nullptr) {
    return invalid_argument(op + ": q, K and V must be 16-byte aligned; out, block_table and " +
                            "kv_len non-null");
  }
  const int64_t n_splits = split_count(args.max_kv_len);
  if (n_splits > 1 && !aligned16(args.workspace)) {
    return invalid_argument(
        op + ": a 16-byte aligned workspace of decode_attention_workspace_bytes() is required");
  }
  DecodeParams p;
  p.out = args.out;
  p.out_stride = args.out_row_stride;
  p.q = args.q;
  p.q_stride = args.q_row_stride;
  p.k = kv.k;
  p.v = kv.v;
  p.block_table = kv.block_table;
  p.max_pages = kv.max_pages;
  p.kv_len = args.kv_len;
  p.max_kv_len = args.max_kv_len;
  p.n_head = args.n_head;
  p.n_head_kv = kv.n_head_kv;
  p.group = group;
  p.head_chunks = head_chunks;
  p.head_dim = kv.head_dim;
  p.scale_log2 = args.scale * kLog2e;
  p.n_splits = static_cast<int>(n_splits);
  // Workspace: acc (batch, n_head, n_splits, head_dim), then stats (batch, n_head, n_splits, 2).
  p.ws_acc = static_cast<float*>(args.workspace);
  if (p.ws_acc != nullptr) {
    p.ws_stats = p.ws_acc + static_cast<int64_t>(args.batch) * args.n_head * n_splits * kv.head_dim;
  }
  const auto s = static_cast<cudaStream_t>(stream);
  VILA_DISPATCH_HALF(args.dtype, op, {
    switch (flash::padded_head_dim(kv.head_dim)) {
      case 32:
        return launch_decode<T, 32>(p, args.batch, s);
      case 64:
        return launch_decode<T, 64>(p, args.batch, s);
      case 80:
        return launch_decode<T, 80>(p, args.batch, s);
      case 96:
        return launch_decode<T, 96>(p, args.batch, s);
      case 128:
        return launch_decode<T, 128>(p, args.batch, s);
      default:
        break;
    }
  });
  return unimplemented(op + ": head_dim " + std::to_string(kv.head_dim));
}

}  // namespace vila::cuda
