// Token selection on the GPU (sampling.h). One block per logits row.
//
// Every column i becomes a 64-bit key (order(logit) << 32) | (0xffffffff - i): keys are distinct,
// and a larger key is a larger logit or, between equal logits, a lower index, which is exactly the
// CPU sampler's candidate order (runtime/sampler.cpp). NaN orders below every number.
//
// argmax_rows: the largest key of the row (block max-reduction; with a workspace, per block of a
// split row, merged by 64-bit atomicMax).
// sample_top_p, per row:
//   1. each thread takes the largest key of its columns; the k-th largest of these thread maxima,
//      tau, is a lower bound of the row's k-th largest key (k thread maxima, distinct elements,
//      are >= tau), so the top k all have key >= tau, and only the k threads whose maximum is >=
//      tau can hold such keys: at most k * (columns per thread) of them;
//   2. the keys >= tau are gathered in shared memory and sorted (bitonic, descending): the first
//      k are the candidates, ordered as the CPU sorts them;
//   3. as runtime/sampler.cpp, in double: p_i = exp((l_i - l_0) / temperature), the top-p cut at
//      the smallest prefix whose normalised mass reaches top_p, then r = u * (kept mass) and the
//      first candidate whose running sum exceeds r. u in [0, 1) is a counter-based hash of
//      (seed, *step, row) (SplitMix64 finalisers), so a replayed CUDA graph draws fresh numbers
//      when the caller advances *step.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/sampling.h"

namespace vila::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarpSize = 32;
constexpr int kVec = 4;    // consecutive columns per thread group (one float4)
constexpr int kBatch = 4;  // groups loaded before any is used (loads in flight)
constexpr size_t kMaxSortBytes = size_t{128} << 10;
constexpr uint32_t kNoIndex = 0xffffffffu;
constexpr int64_t kArgmaxMaxSplits = 32;     // blocks per row of the split argmax
constexpr int64_t kArgmaxMinColumns = 2048;  // per block, at least
constexpr int64_t kMaxGridY = 65535;

// ---- device helpers ----
__device__ __forceinline__ uint64_t make_key(float v, int64_t i) {
  const uint32_t bits = __float_as_uint(v);
  uint32_t order = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  if (v != v) order = 0;  // NaN: below -inf
  return (static_cast<uint64_t>(order) << 32) | (kNoIndex - static_cast<uint32_t>(i));
}
__device__ __forceinline__ int32_t key_index(uint64_t key) {
  return static_cast<int32_t>(kNoIndex - static_cast<uint32_t>(key));
}
__device__ __forceinline__ float key_logit(uint64_t key) {
  const auto order = static_cast<uint32_t>(key >> 32);
  return __uint_as_float((order & 0x80000000u) ? (order & 0x7fffffffu) : ~order);
}

// Calls fn(value, column) for this thread's columns: groups of kVec consecutive columns, group
// threadIdx.x + j * kThreads. kBatch groups are loaded before use to keep loads in flight.
template <typename Fn>
__device__ __forceinline__ void for_each_column(const float* row, int64_t vocab, bool vec_ok,
                                                Fn&& fn) {
  constexpr int64_t kGroupStride = int64_t{kVec} * kThreads;
  for (int64_t base = int64_t{threadIdx.x} * kVec; base < vocab; base += kBatch * kGroupStride) {
    float v[kBatch][kVec];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int64_t col = base + b * kGroupStride;
      if (vec_ok && col + kVec <= vocab) {
        const float4 t = __ldg(reinterpret_cast<const float4*>(row + col));
        v[b][0] = t.x;
        v[b][1] = t.y;
        v[b][2] = t.z;
        v[b][3] = t.w;
      } else {
#pragma unroll
        for (int q = 0; q < kVec; ++q) v[b][q] = col + q < vocab ? __ldg(row + col + q) : 0.0f;
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
#pragma unroll
      for (int q = 0; q < kVec; ++q) {
        const int64_t col = base + b * kGroupStride + q;
        if (col < vocab) fn(v[b][q], col);
      }
    }
  }
}

// Block-wide max of one uint64 per thread; every thread gets the result.
__device__ uint64_t block_max(uint64_t x, uint64_t* scratch /* kThreads / 32 */) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const uint64_t y = __shfl_xor_sync(0xffffffffu, x, offset);
    x = y > x ? y : x;
  }
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = scratch[lane];  // kThreads / 32 == 32 warps
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const uint64_t y = __shfl_xor_sync(0xffffffffu, x, offset);
    x = y > x ? y : x;
  }
  return x;
}

// Sorts a[0, n) descending, n a power of two; block-wide, ends with a barrier.
__device__ void bitonic_sort_desc(uint64_t* a, int n) {
  for (int size = 2; size <= n; size *= 2) {
    for (int stride = size / 2; stride > 0; stride /= 2) {
      for (int i = threadIdx.x; i < n / 2; i += kThreads) {
        const int lo = 2 * i - (i & (stride - 1)), hi = lo + stride;
        const bool descending = (lo & size) == 0;
        const uint64_t x = a[lo], y = a[hi];
        if ((x < y) == descending) {
          a[lo] = y;
          a[hi] = x;
        }
      }
      __syncthreads();
    }
  }
}

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A uniform double in [0, 1) from (seed, step, row).
__device__ __forceinline__ double uniform01(uint64_t seed, uint64_t step, uint64_t row) {
  constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;
  uint64_t h = mix64(seed + kGolden);
  h = mix64(h ^ step);
  h = mix64(h ^ (row * kGolden + 1));
  constexpr double kTwoPowMinus53 = 1.0 / 9007199254740992.0;
  return static_cast<double>(h >> 11) * kTwoPowMinus53;
}

// ---- kernels ----
__global__ void __launch_bounds__(kThreads)
    argmax_kernel(int32_t* out_ids, const float* logits, int64_t vocab, int64_t row_stride,
                  bool vec_ok) {
  __shared__ uint64_t scratch[kThreads / kWarpSize];
  const float* row = logits + blockIdx.x * row_stride;  // (vocab) fp32
  uint64_t best = 0;
  for_each_column(row, vocab, vec_ok, [&](float v, int64_t col) {
    const uint64_t key = make_key(v, col);
    best = key > best ? key : best;
  });
  best = block_max(best, scratch);
  if (threadIdx.x == 0) out_ids[blockIdx.x] = key_index(best);
}

// Grid (blocks per row, rows): block x takes columns [x * chunk, (x + 1) * chunk) of its row, then
// merges its maximum key into best[row] (atomicMax); the block that finishes last (counter) writes
// the id and zeroes best[row] and its counter for the next call.
__global__ void __launch_bounds__(kThreads)
    argmax_split_kernel(int32_t* out_ids, const float* logits, int64_t vocab, int64_t row_stride,
                        int64_t chunk, unsigned long long* best_keys, unsigned* counters) {
  __shared__ uint64_t scratch[kThreads / kWarpSize];
  const int r = blockIdx.y;
  const float* row = logits + r * row_stride;  // (vocab) fp32
  const int64_t c0 = blockIdx.x * chunk, c1 = min(vocab, c0 + chunk);
  uint64_t best = 0;
  for (int64_t c = c0 + threadIdx.x; c < c1; c += kThreads) {
    const uint64_t key = make_key(row[c], c);
    best = key > best ? key : best;
  }
  best = block_max(best, scratch);
  if (threadIdx.x != 0) return;
  atomicMax(&best_keys[r], static_cast<unsigned long long>(best));
  __threadfence();
  if (atomicAdd(&counters[r], 1u) == gridDim.x - 1) {  // every block's maximum is in
    out_ids[r] = key_index(atomicExch(&best_keys[r], 0ull));
    counters[r] = 0;
  }
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(const SampleArgs a, int top_k, bool vec_ok) {
  extern __shared__ uint64_t keys[];  // (buffer entries): thread maxima, then candidates
  __shared__ int count;
  __shared__ double probs[kSampleMaxTopK];
  const float* row = a.logits + blockIdx.x * a.row_stride;  // (vocab) fp32

  // 1. tau = the top_k-th largest thread maximum (0 when fewer threads have columns).
  uint64_t thread_max = 0;
  for_each_column(row, a.vocab, vec_ok, [&](float v, int64_t col) {
    const uint64_t key = make_key(v, col);
    thread_max = key > thread_max ? key : thread_max;
  });
  keys[threadIdx.x] = thread_max;
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  bitonic_sort_desc(keys, kThreads);
  const uint64_t tau = keys[top_k - 1] > 0 ? keys[top_k - 1] : 1;
  __syncthreads();

  // 2. Gather the keys >= tau (warp-aggregated slots), sort them.
  const int lane = threadIdx.x % kWarpSize;
  for_each_column(row, a.vocab, vec_ok, [&](float v, int64_t col) {
    const uint64_t key = make_key(v, col);
    const bool take = key >= tau;
    const unsigned mask = __ballot_sync(__activemask(), take);
    if (!take) return;
    const int leader = __ffs(mask) - 1;
    int slot = 0;
    if (lane == leader) slot = atomicAdd(&count, __popc(mask));
    slot = __shfl_sync(mask, slot, leader);
    keys[slot + __popc(mask & ((1u << lane) - 1))] = key;
  });
  __syncthreads();
  const int gathered = count;
  int padded = 1;
  while (padded < gathered) padded *= 2;
  for (int i = gathered + threadIdx.x; i < padded; i += kThreads) keys[i] = 0;
  __syncthreads();
  bitonic_sort_desc(keys, padded);

  // 3. Temperature, top-p and the draw, as runtime/sampler.cpp.
  if (threadIdx.x >= kWarpSize) return;
  const int candidates = gathered < top_k ? gathered : top_k;
  const double inv_t = 1.0 / static_cast<double>(a.temperature);
  const double max_logit = key_logit(keys[0]);
  for (int i = lane; i < candidates; i += kWarpSize) {
    probs[i] = exp((static_cast<double>(key_logit(keys[i])) - max_logit) * inv_t);
  }
  __syncwarp();
  if (lane != 0) return;
  double total = 0.0;
  for (int i = 0; i < candidates; ++i) total += probs[i];
  int cut = candidates;
  if (a.top_p < 1.0f) {
    double mass = 0.0;
    for (int i = 0; i < candidates; ++i) {
      mass += probs[i] / total;
      if (mass >= static_cast<double>(a.top_p)) {
        cut = i + 1;
        break;
      }
    }
    total = 0.0;
    for (int i = 0; i < cut; ++i) total += probs[i];
  }
  const uint64_t step = a.step != nullptr ? *a.step : 0;
  const double r = uniform01(a.seed, step, blockIdx.x) * total;
  int chosen = cut - 1;
  double acc = 0.0;
  for (int i = 0; i < cut; ++i) {
    acc += probs[i];
    if (r < acc) {
      chosen = i;
      break;
    }
  }
  a.out_ids[blockIdx.x] = key_index(keys[chosen]);
}

bool vector_ok(const float* logits, int64_t row_stride) {
  return (reinterpret_cast<uintptr_t>(logits) & 15u) == 0 && row_stride % kVec == 0;
}

Status check_rows(const char* op, const int32_t* out_ids, const float* logits, int rows,
                  int64_t vocab, int64_t row_stride) {
  if (rows < 0 || vocab < 1 || vocab >= int64_t{kNoIndex} || (rows > 1 && row_stride < vocab)) {
    return invalid_argument(std::string(op) + ": bad shape rows " + std::to_string(rows) +
                            ", vocab " + std::to_string(vocab) + ", row_stride " +
                            std::to_string(row_stride));
  }
  if (rows > 0 && (out_ids == nullptr || logits == nullptr)) {
    return invalid_argument(std::string(op) + ": null pointer");
  }
  return ok_status();
}

}  // namespace

// ---- launchers ----
Status argmax_rows(int32_t* out_ids, const float* logits, int rows, int64_t vocab,
                   int64_t row_stride, void* stream, void* workspace) {
  VILA_RETURN_IF_ERROR(check_rows("argmax_rows", out_ids, logits, rows, vocab, row_stride));
  if (rows == 0) return ok_status();
  const auto s = static_cast<cudaStream_t>(stream);
  const int64_t splits = std::min<int64_t>(kArgmaxMaxSplits, vocab / kArgmaxMinColumns);
  if (workspace == nullptr || splits < 2 || rows > kMaxGridY) {
    argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
        out_ids, logits, vocab, row_stride, vector_ok(logits, row_stride));
  } else {
    auto* best = static_cast<unsigned long long*>(workspace);
    auto* counters = reinterpret_cast<unsigned*>(best + rows);
    const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(rows));
    argmax_split_kernel<<<grid, kThreads, 0, s>>>(out_ids, logits, vocab, row_stride,
                                                  (vocab + splits - 1) / splits, best, counters);
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

size_t argmax_workspace_bytes(int rows) {
  return rows > 0 ? static_cast<size_t>(rows) * (sizeof(unsigned long long) + sizeof(unsigned)) : 0;
}

Status sample_top_p(const SampleArgs& args, void* stream) {
  VILA_RETURN_IF_ERROR(check_rows("sample_top_p", args.out_ids, args.logits, args.rows, args.vocab,
                                  args.row_stride));
  if (!(args.temperature > 0.0f) || std::isinf(args.temperature)) {
    return invalid_argument("sample_top_p: temperature must be > 0 and finite, got " +
                            std::to_string(args.temperature));
  }
  if (args.top_k < 0 || args.top_k > kSampleMaxTopK) {
    return invalid_argument("sample_top_p: top_k must be in [0, " + std::to_string(kSampleMaxTopK) +
                            "], got " + std::to_string(args.top_k));
  }
  if (!(args.top_p > 0.0f && args.top_p <= 1.0f)) {
    return invalid_argument("sample_top_p: top_p must be in (0, 1], got " +
                            std::to_string(args.top_p));
  }
  if (args.rows == 0) return ok_status();
  int top_k = args.top_k == 0 ? kSampleMaxTopK : args.top_k;
  if (top_k > args.vocab) top_k = static_cast<int>(args.vocab);
  // Step 1 bounds the gathered keys by top_k * (columns per thread); the buffer also holds the
  // kThreads thread maxima and is a power of two for the sort.
  const int64_t per_thread =
      kVec * ((args.vocab + int64_t{kVec} * kThreads - 1) / (int64_t{kVec} * kThreads));
  const int64_t bound = top_k * per_thread > kThreads ? top_k * per_thread : kThreads;
  int64_t entries = 1;
  while (entries < bound) entries *= 2;
  const size_t smem = static_cast<size_t>(entries) * sizeof(uint64_t);
  if (smem > kMaxSortBytes) {
    return unimplemented("sample_top_p: vocab " + std::to_string(args.vocab) + " too large");
  }
  VILA_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  sample_kernel<<<static_cast<unsigned>(args.rows), kThreads, smem,
                  static_cast<cudaStream_t>(stream)>>>(args, top_k,
                                                       vector_ok(args.logits, args.row_stride));
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
