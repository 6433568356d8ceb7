#include <cmath>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/embedding.h"

namespace vila::cuda {

namespace {

// ---- kernels ----
// One block per output row.
__global__ void embedding_f32_kernel(float* __restrict__ out, const float* __restrict__ table,
                                     const int32_t* __restrict__ ids, int64_t vocab,
                                     int64_t cols) {
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
