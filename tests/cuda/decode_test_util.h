// Helpers shared by the decode-path CUDA op tests (decode_ops_test.cpp, gemv_test.cpp): random
// inputs, 16-bit rounding on the host, device upload / poisoned buffers / download, and a
// cudaEvent timer. Test-only code.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "cuda_test_util.h"

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/memory.h"
#endif

namespace vila::decode_test {

using testing::kPoison;

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// fp32 -> 16-bit (RNE, core/dtype.h) and back.
inline std::vector<uint16_t> to_half(const std::vector<float>& x, DType dt) {
  std::vector<uint16_t> h(x.size());
  EXPECT_TRUE(convert_from_f32(x.data(), dt, h.data(), static_cast<int64_t>(x.size())).ok());
  return h;
}
inline std::vector<float> from_half(const std::vector<uint16_t>& h, DType dt) {
  std::vector<float> x(h.size());
  EXPECT_TRUE(convert_to_f32(dt, h.data(), x.data(), static_cast<int64_t>(h.size())).ok());
  return x;
}
inline uint16_t round_half(float v, DType dt) {
  return dt == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
}
inline float half_to_f32(uint16_t h, DType dt) {
  return dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}
inline const char* dtype_tag(DType dt) { return dt == DType::kBF16 ? "bf16" : "f16"; }

#ifdef VILA_WITH_CUDA
using testing::download;
using testing::poisoned;
using testing::upload;

// Milliseconds per call of fn, by cudaEvents over `iters` calls after a warm-up call.
template <typename Fn>
double time_ms(int iters, Fn&& fn) {
  fn(0);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < iters; ++i) fn(i + 1);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / iters;
}

#endif  // VILA_WITH_CUDA

}  // namespace vila::decode_test
