// Shared by the CUDA tests: whether a GPU is usable, a skip that works in CPU-only builds, a
// cudaEvent timer for the timing cases, and device buffers from host vectors (upload), filled with
// 0xff bytes (poisoned: NaN in fp32, bf16 and f16) and back to the host (download).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/device.h"
#include "backend/cuda/memory.h"
#endif

namespace vila::testing {

inline constexpr uint8_t kPoison = 0xff;       // every poisoned fp32 / bf16 / f16 element is a NaN
inline constexpr size_t kMinBufferBytes = 16;  // empty host vectors still get a valid buffer

inline bool have_gpu() {
#ifdef VILA_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

#ifdef VILA_WITH_CUDA
// Mean milliseconds per call of `run` (returning a Status, expected OK) over `iters` calls on
// `stream`, timed with cudaEvents after 2 warm-up calls.
template <typename Fn>
double time_ms(cudaStream_t stream, int iters, Fn run) {
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(run().ok());
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, stream);
  for (int i = 0; i < iters; ++i) EXPECT_TRUE(run().ok());
  cudaEventRecord(stop, stream);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

template <typename T>
cuda::DeviceBuffer upload(const std::vector<T>& host) {
  auto buf = cuda::DeviceBuffer::create(std::max(host.size() * sizeof(T), kMinBufferBytes));
  EXPECT_TRUE(buf.ok());
  EXPECT_TRUE(
      cuda::copy_to_device(buf->data(), host.data(), host.size() * sizeof(T), nullptr).ok());
  return std::move(*buf);
}

inline cuda::DeviceBuffer poisoned(size_t bytes) {
  auto buf = cuda::DeviceBuffer::create(std::max(bytes, kMinBufferBytes));
  EXPECT_TRUE(buf.ok());
  EXPECT_TRUE(cuda::memset_device(buf->data(), kPoison, bytes, nullptr).ok());
  return std::move(*buf);
}

// count elements of type T from buf, starting at element offset.
template <typename T>
std::vector<T> download(const cuda::DeviceBuffer& buf, size_t count, size_t offset = 0) {
  std::vector<T> host(count);
  EXPECT_TRUE(
      cuda::copy_to_host(host.data(), buf.as<T>() + offset, count * sizeof(T), nullptr).ok());
  return host;
}
#endif

}  // namespace vila::testing

// Skips the current test without CUDA or without a GPU.
#define VILA_SKIP_WITHOUT_GPU() \
  if (!::vila::testing::have_gpu()) GTEST_SKIP() << "no CUDA build or no CUDA device"
