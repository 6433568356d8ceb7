// Deterministic cross-block sums (partials.h): the shared workspace and the in-order reduction.
#include <algorithm>
#include <mutex>
#include <string>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/memory.h"
#include "backend/cuda/partials.h"

namespace vila::cuda {

namespace {

constexpr int kCols = 32;   // columns per block (one per lane: coalesced rows of partials)
constexpr int kLanes = 32;  // group lanes per column
constexpr int64_t kMaxBlocks = 65535;

// Block (kCols, kLanes) per kCols columns: lane y sums groups y, y + kLanes, ... in order, then
// the kLanes sums meet in a fixed tree. The same order every run: bitwise reproducible.
__global__ void add_partials_kernel(float* __restrict__ out, const float* __restrict__ partials,
                                    int64_t groups, int64_t n, bool accumulate) {
  __shared__ float red[kLanes][kCols + 1];
  for (int64_t c0 = static_cast<int64_t>(blockIdx.x) * kCols; c0 < n;
       c0 += static_cast<int64_t>(gridDim.x) * kCols) {
    const int64_t c = c0 + threadIdx.x;
    float s = 0.0f;
    if (c < n) {
      for (int64_t g = threadIdx.y; g < groups; g += kLanes) s += partials[g * n + c];
    }
    red[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    for (int half = kLanes / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.y) < half) {
        red[threadIdx.y][threadIdx.x] += red[threadIdx.y + half][threadIdx.x];
      }
      __syncthreads();
    }
    if (threadIdx.y == 0 && c < n) {
      out[c] = accumulate ? out[c] + red[0][threadIdx.x] : red[0][threadIdx.x];
    }
    __syncthreads();
  }
}

struct Workspace {
  std::mutex mu;
  DeviceBuffer buffer;
};

Workspace& workspace() {
  static Workspace* w = new Workspace();  // lives for the process (no destruction-order issue)
  return *w;
}

}  // namespace

StatusOr<void*> partials_workspace(size_t bytes) {
  Workspace& w = workspace();
  const std::lock_guard<std::mutex> lock(w.mu);
  if (w.buffer.empty() || w.buffer.bytes() < bytes) {
    if (!w.buffer.empty()) VILA_CUDA_CHECK(cudaDeviceSynchronize());  // earlier users finish
    w.buffer = DeviceBuffer();
    VILA_ASSIGN_OR_RETURN(w.buffer, DeviceBuffer::create(std::max<size_t>(bytes, 1 << 20)));
  }
  return w.buffer.data();
}

Status add_partials(float* out, const float* partials, int64_t groups, int64_t n, bool accumulate,
                    void* stream) {
  if (groups < 1 || n < 1) {
    return invalid_argument("add_partials: bad shape " + std::to_string(groups) + " x " +
                            std::to_string(n));
  }
  if (out == nullptr || partials == nullptr) return invalid_argument("add_partials: null pointer");
  const auto blocks = static_cast<unsigned>(std::min(ceil_div(n, int64_t{kCols}), kMaxBlocks));
  add_partials_kernel<<<blocks, dim3(kCols, kLanes), 0, static_cast<cudaStream_t>(stream)>>>(
      out, partials, groups, n, accumulate);
  VILA_CUDA_CHECK(cudaGetLastError());
  return ok_status();
}

}  // namespace vila::cuda
