// Shared by the CUDA tests: whether a GPU is usable, a skip that works in CPU-only builds, and a
// cudaEvent timer for the timing cases.
#pragma once

#include <gtest/gtest.h>

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/device.h"
#endif

namespace vila::testing {

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
#endif

}  // namespace vila::testing

// Skips the current test without CUDA or without a GPU.
#define VILA_SKIP_WITHOUT_GPU() \
  if (!::vila::testing::have_gpu()) GTEST_SKIP() << "no CUDA build or no CUDA device"
