// Shared by the CUDA tests: whether a GPU is usable, and a skip that works in CPU-only builds.
#pragma once

#include <gtest/gtest.h>

#ifdef VILA_WITH_CUDA
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

}  // namespace vila::testing

// Skips the current test without CUDA or without a GPU.
#define VILA_SKIP_WITHOUT_GPU() \
  if (!::vila::testing::have_gpu()) GTEST_SKIP() << "no CUDA build or no CUDA device"
