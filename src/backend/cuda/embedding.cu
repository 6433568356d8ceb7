#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/embedding.h"

namespace vila::cuda {

namespace {

// ---- kernels ----
// One block per output row.
__global__ void embedding_f32_kernel(float* __restrict__ out, const float* __restrict__ table,
                                     const int32_t* __restrict__ ids, int64_t vocab, int64_t cols) {
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  float* o = out + row * cols;
  if (id < 0 || id >= vocab) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = NAN;
    return;
  }
  const float* src = table + static_cast<int64_t>(id) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = src[c];
}

template <typename T>
__global__ void embedding_to_f32_kernel(float* __restrict__ out, const T* __restrict__ table,
                                        const int32_t* __restrict__ ids, int64_t vocab,
                                        int64_t cols) {
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  float* o = out + row * cols;
  if (id < 0 || id >= vocab) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = NAN;
    return;
  }
  const T* src = table + static_cast<int64_t>(id) * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = to_float(src[c]);
}

// splitmix64 of (seed, i): independent uniform bits per element.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void fill_uniform_kernel(T* __restrict__ dst, int64_t n, float lo, float hi,
                                    uint64_t seed) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const uint64_t bits = mix64(seed * 0x100000001b3ull ^ static_cast<uint64_t>(i));
    const float u = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    dst[i] = from_float<T>(lo + (hi - lo) * u);
  }
}

}  // namespace

// ---- launchers ----
Status embedding_f32(float* out, const float* table, const int32_t* ids, int64_t n, int64_t vocab,
                     int64_t cols, void* stream) {
  if (n < 0 || vocab <= 0 || cols <= 0) {
    return {StatusCode::kInvalidArgument, "embedding_f32: bad shape"};
  }
  if (n == 0) return {};
  constexpr int kThreads = 256;
  embedding_f32_kernel<<<static_cast<unsigned>(n), kThreads, 0,
                         static_cast<cudaStream_t>(stream)>>>(out, table, ids, vocab, cols);
  VILA_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace vila::cuda

namespace vila::cuda {

Status embedding_to_f32(float* out, const void* table, DType dtype, const int32_t* ids, int64_t n,
                        int64_t vocab, int64_t cols, void* stream) {
  if (n < 0 || vocab <= 0 || cols <= 0) return invalid_argument("embedding_to_f32: bad shape");
  if (n == 0) return ok_status();
  constexpr int kThreads = 256;
  VILA_DISPATCH_HALF(dtype, "embedding_to_f32", {
    embedding_to_f32_kernel<T>
        <<<static_cast<unsigned>(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
            out, static_cast<const T*>(table), ids, vocab, cols);
  });
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

Status fill_uniform(void* dst, DType dtype, int64_t n, float lo, float hi, uint64_t seed,
                    void* stream) {
  if (n < 0) return invalid_argument("fill_uniform: negative count");
  if (n == 0) return ok_status();
  constexpr int kThreads = 256;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(n, kThreads), 65536));
  const auto s = static_cast<cudaStream_t>(stream);
  if (dtype == DType::kF32) {
    fill_uniform_kernel<float>
        <<<blocks, kThreads, 0, s>>>(static_cast<float*>(dst), n, lo, hi, seed);
  } else {
    VILA_DISPATCH_HALF(dtype, "fill_uniform", {
      fill_uniform_kernel<T><<<blocks, kThreads, 0, s>>>(static_cast<T*>(dst), n, lo, hi, seed);
    });
  }
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
