// CUDA ops against the CPU oracle. Skips cleanly where there is no CUDA build or no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/cpu/norm.h"

#ifdef VILA_WITH_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/device.h"
#include "backend/cuda/rms_norm.h"
#endif

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA
bool have_gpu() { return cuda::device_count() > 0; }
#endif

TEST(CudaOps, RmsNormMatchesCpu) {
#ifndef VILA_WITH_CUDA
  GTEST_SKIP() << "built without CUDA";
#else
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (const auto& [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {17, 896}, {5, 1152}, {2, 3584}, {9, 4099}}) {
    std::vector<float> x(static_cast<size_t>(rows * cols)), w(static_cast<size_t>(cols));
    for (float& v : x) v = dist(rng);
    for (float& v : w) v = dist(rng);
    std::vector<float> ref(x.size());
    ASSERT_TRUE(cpu::rms_norm({ref.data(), DType::kF32, {rows, cols}},
                              {x.data(), DType::kF32, {rows, cols}},
                              {w.data(), DType::kF32, {cols}}, 1e-6f)
                    .ok());
    float *dx = nullptr, *dw = nullptr, *dout = nullptr;
    ASSERT_EQ(cudaMalloc(&dx, x.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dw, w.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dout, x.size() * 4), cudaSuccess);
    cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dw, w.data(), w.size() * 4, cudaMemcpyHostToDevice);
    cudaMemset(dout, 0xff, x.size() * 4);  // poison: every element must be written
    ASSERT_TRUE(cuda::rms_norm_f32(dout, dx, dw, rows, cols, 1e-6f, nullptr).ok());
    std::vector<float> got(x.size());
    ASSERT_EQ(cudaMemcpy(got.data(), dout, x.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(dout);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], ref[i], 1e-5f * (1.0f + std::fabs(ref[i]))) << rows << "x" << cols;
    }
  }
#endif
}

}  // namespace
}  // namespace vila
