// Rotary embedding + paged KV append (kv_append.h). One block per token row:
//   cos/sin (D/2): angle = float(pos) * inv_freq[i] (an fp32 product), cos and sin evaluated in
//                  double and rounded to fp32, as rope.cu's rope_cos_sin_f32 and ops/cpu/rope.h;
//   q, k heads:    x1, x2 = x[:D/2], x[D/2:];  x1*cos - x2*sin, x2*cos + x1*sin with each product
//                  rounded (no FMA contraction), as the CPU op; then rounded to the compute dtype;
//   v heads:       rounded to the compute dtype.
// q goes to q_out (rows, H*D); k and v go to row pos % kKvPageSize of page
// block_table[seq * max_pages + pos / kKvPageSize] of the K and V pools
// (num_pages, Hkv, kKvPageSize, D). A position outside [0, max_pages * kKvPageSize) or a negative
// page id writes no K/V (q is still written).
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/kv_append.h"

namespace vila::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kFewRows = 32;         // below this many rows,
constexpr int kBlocksPerFewRow = 8;  // each row's rotations and copies spread over 8 blocks

// ---- kernels ----
template <typename T>
__global__ void __launch_bounds__(kThreads) rope_kv_append_kernel(const KvAppendArgs a) {
  extern __shared__ float cos_sin[];  // [0, half): cos, [half, D): sin
  const int64_t r = blockIdx.x;
  const int d = a.kv.head_dim, half = d / 2;
  const int n_head = a.n_head, n_kv = a.kv.n_head_kv;
  const int32_t pos = a.positions[r];
  const bool from_table = a.rope_cos != nullptr && pos >= 0 && pos < a.table_positions;
  for (int i = threadIdx.x; i < half; i += kThreads) {
    if (from_table) {
      cos_sin[i] = a.rope_cos[int64_t{pos} * half + i];
      cos_sin[half + i] = a.rope_sin[int64_t{pos} * half + i];
    } else {
      const float angle = __fmul_rn(static_cast<float>(pos), a.inv_freq[i]);
      cos_sin[i] = static_cast<float>(cos(static_cast<double>(angle)));
      cos_sin[half + i] = static_cast<float>(sin(static_cast<double>(angle)));
    }
  }
  __syncthreads();
  // Block y of gridDim.y takes every gridDim.y-th item of the row's rotations and v copies.
  const int first = threadIdx.x + blockIdx.y * kThreads, step = kThreads * gridDim.y;

  const float* src = a.qkv + r * a.qkv_row_stride;               // ((H + 2*Hkv) * D) fp32
  T* q_out = static_cast<T*>(a.q_out) + r * a.q_out_row_stride;  // (H * D)
  // The page row of this token for head 0; head h adds h * kKvPageSize * D.
  int64_t kv_row = -1;
  if (pos >= 0 && pos / kKvPageSize < a.kv.max_pages) {
    const int32_t seq = a.seq_ids[r];
    const int32_t page = a.kv.block_table[int64_t{seq} * a.kv.max_pages + pos / kKvPageSize];
    if (page >= 0) kv_row = (int64_t{page} * n_kv * kKvPageSize + pos % kKvPageSize) * d;
  }
  T* k_pool = static_cast<T*>(a.kv.k);
  T* v_pool = static_cast<T*>(a.kv.v);
  const int64_t head_stride = int64_t{kKvPageSize} * d;  // between heads in a page

  // Rotations: q heads [0, H), then k heads [H, H + Hkv).
  const int rotations = (n_head + n_kv) * half;
  for (int idx = first; idx < rotations; idx += step) {
    const int h = idx / half, i = idx % half;
    const float* x = src + int64_t{h} * d;
    const float c = cos_sin[i], s = cos_sin[half + i];
    const float x1 = x[i], x2 = x[i + half];
    const float y1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
    const float y2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
    if (h < n_head) {
      q_out[int64_t{h} * d + i] = from_float<T>(y1);
      q_out[int64_t{h} * d + i + half] = from_float<T>(y2);
    } else if (kv_row >= 0) {
      T* k = k_pool + kv_row + (h - n_head) * head_stride;
      k[i] = from_float<T>(y1);
      k[i + half] = from_float<T>(y2);
    }
  }
  if (kv_row < 0) return;
  const float* v_src = src + int64_t{n_head + n_kv} * d;  // (Hkv * D)
  for (int idx = first; idx < n_kv * d; idx += step) {
    const int h = idx / d, i = idx % d;
    v_pool[kv_row + h * head_stride + i] = from_float<T>(v_src[idx]);
  }
}

}  // namespace

// ---- launchers ----
Status rope_kv_append(const KvAppendArgs& args, void* stream) {
  const PagedKv& kv = args.kv;
  if (args.rows < 0 || args.n_head <= 0 || kv.n_head_kv <= 0 || kv.head_dim <= 0 ||
      kv.head_dim % 2 != 0 || kv.max_pages <= 0) {
    return invalid_argument("rope_kv_append: bad shape rows " + std::to_string(args.rows) + ", H " +
                            std::to_string(args.n_head) + ", Hkv " + std::to_string(kv.n_head_kv) +
                            ", D " + std::to_string(kv.head_dim) + " (even), max_pages " +
                            std::to_string(kv.max_pages));
  }
  if (args.rows == 0) return ok_status();
  const int64_t d = kv.head_dim;
  const int64_t qkv_width = (args.n_head + 2 * int64_t{kv.n_head_kv}) * d;
  if (args.qkv_row_stride < qkv_width || args.q_out_row_stride < args.n_head * d) {
    return invalid_argument("rope_kv_append: row strides qkv " +
                            std::to_string(args.qkv_row_stride) +
                            " (need >= " + std::to_string(qkv_width) + "), q_out " +
                            std::to_string(args.q_out_row_stride) +
                            " (need >= " + std::to_string(args.n_head * d) + ")");
  }
  if (args.q_out == nullptr || args.qkv == nullptr || args.positions == nullptr ||
      args.seq_ids == nullptr || args.inv_freq == nullptr || kv.k == nullptr || kv.v == nullptr ||
      kv.block_table == nullptr) {
    return invalid_argument("rope_kv_append: null pointer");
  }
  if (args.rope_cos != nullptr && (args.rope_sin == nullptr || args.table_positions < 0)) {
    return invalid_argument("rope_kv_append: rope_cos needs rope_sin and table_positions >= 0");
  }
  const size_t smem = static_cast<size_t>(d) * sizeof(float);
  const auto s = static_cast<cudaStream_t>(stream);
  // A few rows (decode) would leave one block per row doing all heads: split each row's work.
  const dim3 grid(static_cast<unsigned>(args.rows), args.rows < kFewRows ? kBlocksPerFewRow : 1);
  VILA_DISPATCH_HALF(args.dtype, "rope_kv_append",
                     { rope_kv_append_kernel<T><<<grid, kThreads, smem, s>>>(args); });
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
