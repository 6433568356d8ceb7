// The vision path on the GPU: each kernel of backend/cuda/layer_norm.h and vision_ops.h against its
// CPU oracle on odd shapes (outputs poisoned with 0xff bytes first), and CudaVisionEncoder against
// the CPU VisionEncoder on the three vision fixtures in bf16 and f16 (timings: vision_timing_test).
// Skips cleanly without CUDA or a GPU.
#include "model/vision_cuda.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "../common/golden_util.h"
#include "core/dtype.h"
#include "model/projector.h"
#include "model/s2_merge.h"
#include "model/vision_encoder.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/patch_embed.h"
#include "vision/image.h"
#include "vision/preprocess.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/elementwise.h"
#include "backend/cuda/embedding.h"
#include "backend/cuda/layer_norm.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/vision_ops.h"
#endif

#include "cuda_test_util.h"

namespace vila {
namespace {

namespace fs = std::filesystem;

[[maybe_unused]] std::vector<float> random_floats(std::mt19937& rng, int64_t n, float stddev = 1.0f,
                                                  float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// max |got - ref| / (1 + |ref|), NaN counting as infinite.
[[maybe_unused]] double max_rel_error(const std::vector<float>& got,
                                      const std::vector<float>& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::fabs(static_cast<double>(got[i]) - ref[i]) / (1.0 + std::fabs(ref[i]));
    if (!(e <= worst)) worst = std::isnan(e) ? INFINITY : e;
  }
  return worst;
}

// max |got - ref| / max |ref|: the error relative to the range of the values.
[[maybe_unused]] double range_rel_error(const std::vector<float>& got,
                                        const std::vector<float>& ref) {
  if (got.size() != ref.size() || ref.empty()) return INFINITY;
  double range = 0;
  for (float r : ref) range = std::max(range, std::fabs(static_cast<double>(r)));
  return golden::max_abs_diff(got.data(), ref.data(), static_cast<int64_t>(ref.size())) /
         std::max(range, 1e-30);
}

// x rounded to dtype and widened back (identity for kF32).
[[maybe_unused]] float round_to(DType dtype, float x) {
  if (dtype == DType::kBF16) return bf16_to_f32(f32_to_bf16(x));
  if (dtype == DType::kF16) return f16_to_f32(f32_to_f16(x));
  return x;
}

[[maybe_unused]] std::vector<float> rounded(DType dtype, std::vector<float> v) {
  for (float& x : v) x = round_to(dtype, x);
  return v;
}

#ifdef VILA_WITH_CUDA
constexpr DType kOutDtypes[] = {DType::kF32, DType::kBF16, DType::kF16};
constexpr DType kHalfDtypes[] = {DType::kBF16, DType::kF16};

cuda::DeviceBuffer upload(const std::vector<float>& host) {
  auto buf = cuda::DeviceBuffer::create(std::max<size_t>(host.size() * 4, 4));
  EXPECT_TRUE(buf.ok());
  EXPECT_TRUE(cuda::copy_to_device(buf->data(), host.data(), host.size() * 4, nullptr).ok());
  return std::move(*buf);
}

// A host vector converted to dtype on the host, then uploaded.
cuda::DeviceBuffer upload_as(DType dtype, const std::vector<float>& host) {
  if (dtype == DType::kF32) return upload(host);
  std::vector<uint16_t> half(host.size());
  EXPECT_TRUE(
      convert_from_f32(host.data(), dtype, half.data(), static_cast<int64_t>(host.size())).ok());
  auto buf = cuda::DeviceBuffer::create(std::max<size_t>(half.size() * 2, 4));
  EXPECT_TRUE(buf.ok());
  EXPECT_TRUE(cuda::copy_to_device(buf->data(), half.data(), half.size() * 2, nullptr).ok());
  return std::move(*buf);
}

cuda::DeviceBuffer poisoned(size_t bytes) {
  auto buf = cuda::DeviceBuffer::create(std::max<size_t>(bytes, 4));
  EXPECT_TRUE(buf.ok());
  EXPECT_TRUE(cuda::memset_device(buf->data(), 0xff, bytes, nullptr).ok());
  return std::move(*buf);
}

// count values of dtype at buf, widened to fp32.
std::vector<float> download(const cuda::DeviceBuffer& buf, DType dtype, size_t count) {
  std::vector<float> out(count);
  if (dtype == DType::kF32) {
    EXPECT_TRUE(cuda::copy_to_host(out.data(), buf.data(), count * 4, nullptr).ok());
    return out;
  }
  std::vector<uint16_t> half(count);
  EXPECT_TRUE(cuda::copy_to_host(half.data(), buf.data(), count * 2, nullptr).ok());
  EXPECT_TRUE(convert_to_f32(dtype, half.data(), out.data(), static_cast<int64_t>(count)).ok());
  return out;
}

size_t bytes_of(DType dtype, size_t count) {
  return static_cast<size_t>(dtype_bytes(dtype, count));
}
#endif

// ---------------------------------------------------------------------------------------------
// Kernels vs their CPU oracles
// ---------------------------------------------------------------------------------------------

TEST(CudaVisionOps, LayerNormMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(11);
  struct Case {
    int64_t rows, cols;
    float eps, mean;
    bool bias;
  };
  // cols % 4 == 0 and <= 2048 take the warp-per-row kernel (1152: SigLIP; 2048: its limit; 4
  // with 7 rows: a partial block of rows), the others the block-per-row kernel.
  const Case cases[] = {{1, 1, 1e-6f, 0.0f, true},    {3, 7, 1e-5f, 3.0f, false},
                        {17, 33, 1e-6f, -2.0f, true}, {5, 1152, 1e-6f, 0.5f, true},
                        {3, 4609, 1e-5f, 0.0f, true}, {130, 96, 1e-6f, 1.0f, true},
                        {7, 4, 1e-6f, 0.0f, false},   {9, 2048, 1e-6f, -1.0f, true},
                        {6, 2052, 1e-5f, 0.0f, true}, {33, 1152, 1e-6f, 4.0f, false}};
  for (const Case& c : cases) {
    const int64_t n = c.rows * c.cols;
    const auto x = random_floats(rng, n, 2.0f, c.mean);
    const auto w = random_floats(rng, c.cols, 0.5f, 1.0f);
    const auto b = random_floats(rng, c.cols, 0.1f);
    std::vector<float> ref(static_cast<size_t>(n));
    std::vector<float> x_copy = x, w_copy = w, b_copy = b;
    ASSERT_TRUE(cpu::layer_norm(f32_view(ref.data(), {c.rows, c.cols}),
                                f32_view(x_copy.data(), {c.rows, c.cols}),
                                f32_view(w_copy.data(), {c.cols}),
                                c.bias ? f32_view(b_copy.data(), {c.cols}) : TensorView(), c.eps)
                    .ok());
    const auto dx = upload(x), dw = upload(w), db = upload(b);
    for (DType dt : kOutDtypes) {
      SCOPED_TRACE(std::to_string(c.rows) + "x" + std::to_string(c.cols) + " " + dtype_name(dt));
      const auto out = poisoned(bytes_of(dt, n));
      ASSERT_TRUE(cuda::layer_norm(out.data(), dt, 0, dx.as<float>(), DType::kF32, dw.as<float>(),
                                   c.bias ? db.as<float>() : nullptr, c.rows, c.cols, c.eps,
                                   nullptr)
                      .ok());
      const auto got = download(out, dt, static_cast<size_t>(n));
      // fp32 statistics vs the CPU's double ones; 16-bit: one rounding of the fp32 value.
      const double tol = dt == DType::kF32 ? 2e-5 : (dt == DType::kBF16 ? 8e-3 : 1e-3);
      EXPECT_LE(max_rel_error(got, ref), tol);

      // Strided out (row stride cols + 5: the block kernel; cols + 8: the warp-per-row kernel when
      // cols % 4 == 0): the rows land at the stride, the gaps stay poisoned.
      for (int64_t extra : {5, 8}) {
        const int64_t stride = c.cols + extra;
        const auto strided = poisoned(bytes_of(dt, c.rows * stride));
        ASSERT_TRUE(cuda::layer_norm(strided.data(), dt, stride, dx.as<float>(), DType::kF32,
                                     dw.as<float>(), c.bias ? db.as<float>() : nullptr, c.rows,
                                     c.cols, c.eps, nullptr)
                        .ok());
        const auto all = download(strided, dt, static_cast<size_t>(c.rows * stride));
        std::vector<float> rows_only;
        int64_t gap_written = 0;
        for (int64_t r = 0; r < c.rows; ++r) {
          rows_only.insert(rows_only.end(), all.begin() + r * stride,
                           all.begin() + r * stride + c.cols);
          for (int64_t j = c.cols; j < stride; ++j) gap_written += !std::isnan(all[r * stride + j]);
        }
        // The same kernel as the compact call (bit-equal), or the other one (same tolerance).
        const bool same_kernel = c.cols % 4 != 0 || c.cols > 2048 || extra % 4 == 0;
        if (same_kernel) {
          EXPECT_EQ(rows_only, got);
        } else {
          EXPECT_LE(max_rel_error(rows_only, ref), tol);
        }
        EXPECT_EQ(gap_written, 0);
      }
      if (dt != DType::kF32) {  // 16-bit x of the same dtype (the tower's 16-bit residual stream)
        std::vector<float> x16 = rounded(dt, x);
        std::vector<float> ref16(static_cast<size_t>(n));
        std::vector<float> w16 = w;
        std::vector<float> b16 = b;
        ASSERT_TRUE(cpu::layer_norm(f32_view(ref16.data(), {c.rows, c.cols}),
                                    f32_view(x16.data(), {c.rows, c.cols}),
                                    f32_view(w16.data(), {c.cols}),
                                    c.bias ? f32_view(b16.data(), {c.cols}) : TensorView(), c.eps)
                        .ok());
        const auto dx16 = upload_as(dt, x);
        const auto out16 = poisoned(bytes_of(dt, n));
        ASSERT_TRUE(cuda::layer_norm(out16.data(), dt, 0, dx16.data(), dt, dw.as<float>(),
                                     c.bias ? db.as<float>() : nullptr, c.rows, c.cols, c.eps,
                                     nullptr)
                        .ok());
        EXPECT_LE(max_rel_error(download(out16, dt, static_cast<size_t>(n)), ref16), tol);
        const DType other = dt == DType::kBF16 ? DType::kF16 : DType::kBF16;
        EXPECT_EQ(cuda::layer_norm(out16.data(), other, 0, dx16.data(), dt, dw.as<float>(), nullptr,
                                   c.rows, c.cols, c.eps, nullptr)
                      .code(),
                  StatusCode::kUnimplemented);
      }
    }
    // In place (fp32).
    auto inplace = upload(x);
    ASSERT_TRUE(cuda::layer_norm(inplace.data(), DType::kF32, 0, inplace.as<float>(), DType::kF32,
                                 dw.as<float>(), c.bias ? db.as<float>() : nullptr, c.rows, c.cols,
                                 c.eps, nullptr)
                    .ok());
    EXPECT_LE(max_rel_error(download(inplace, DType::kF32, static_cast<size_t>(n)), ref), 2e-5);
  }
  EXPECT_FALSE(cuda::layer_norm(nullptr, DType::kF32, 0, nullptr, DType::kF32, nullptr, nullptr, 2,
                                0, 1e-6f, nullptr)
                   .ok());
  EXPECT_FALSE(  // stride < cols
      cuda::layer_norm(nullptr, DType::kF32, 3, nullptr, DType::kF32, nullptr, nullptr, 2, 4, 1e-6f,
                       nullptr)
          .ok());
#endif
}

TEST(CudaVisionOps, Im2colIsExactAndPatchEmbedMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(12);
  struct Case {
    int64_t batch, cin, size, patch, channels;
  };
  // 30 / 7 leaves a 2-pixel remainder (a valid convolution drops it); 28 / 14 is the fixture's.
  const Case cases[] = {{2, 3, 30, 7, 40}, {3, 3, 28, 14, 32}, {1, 1, 5, 5, 3}, {2, 3, 45, 14, 24}};
  constexpr int64_t kAlign = 8;
  auto blas = cuda::Blas::create();
  ASSERT_TRUE(blas.ok()) << blas.status().to_string();
  for (const Case& c : cases) {
    const int64_t grid = c.size / c.patch, P = grid * grid, k = c.cin * c.patch * c.patch;
    const int64_t stride = (k + kAlign - 1) / kAlign * kAlign, rows = c.batch * P;
    const auto pixels = random_floats(rng, c.batch * c.cin * c.size * c.size);
    const auto weight = random_floats(rng, c.channels * k, 0.1f);
    const auto bias = random_floats(rng, c.channels, 0.1f);
    const auto dpix = upload(pixels);
    for (DType dt : kHalfDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " size " + std::to_string(c.size) + " patch " +
                   std::to_string(c.patch));
      const auto cols = poisoned(bytes_of(dt, rows * stride));
      ASSERT_TRUE(cuda::im2col_patches(cols.data(), dt, stride, dpix.as<float>(), DType::kF32,
                                       c.batch, c.cin, c.size, c.patch, nullptr)
                      .ok());
      const auto got = download(cols, dt, static_cast<size_t>(rows * stride));
      // Pixels rounded to dt on the host first (the tower's upload) give the same columns.
      const auto dpix16 = upload_as(dt, pixels);
      const auto cols16 = poisoned(bytes_of(dt, rows * stride));
      ASSERT_TRUE(cuda::im2col_patches(cols16.data(), dt, stride, dpix16.data(), dt, c.batch, c.cin,
                                       c.size, c.patch, nullptr)
                      .ok());
      EXPECT_EQ(download(cols16, dt, static_cast<size_t>(rows * stride)), got);
      const DType other = dt == DType::kBF16 ? DType::kF16 : DType::kBF16;
      EXPECT_EQ(cuda::im2col_patches(cols16.data(), dt, stride, dpix16.data(), other, c.batch,
                                     c.cin, c.size, c.patch, nullptr)
                    .code(),
                StatusCode::kUnimplemented);
      int64_t mismatches = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = r / P, py = r % P / grid, px = r % grid;
        for (int64_t col = 0; col < stride; ++col) {
          float want = 0.0f;
          if (col < k) {
            const int64_t ci = col / (c.patch * c.patch), ky = col / c.patch % c.patch;
            const int64_t kx = col % c.patch;
            want = round_to(
                dt,
                pixels[static_cast<size_t>(
                    ((b * c.cin + ci) * c.size + py * c.patch + ky) * c.size + px * c.patch + kx)]);
          }
          mismatches += got[static_cast<size_t>(r * stride + col)] != want;
        }
      }
      EXPECT_EQ(mismatches, 0);

      // The patch-embedding GEMM on those columns (weight padded to the stride) vs
      // cpu::patch_embed fed the same rounded pixels and weights.
      std::vector<float> wpad(static_cast<size_t>(c.channels * stride), 0.0f);
      const auto wr = rounded(dt, weight);
      for (int64_t n = 0; n < c.channels; ++n) {
        std::copy(wr.begin() + n * k, wr.begin() + (n + 1) * k, wpad.begin() + n * stride);
      }
      const auto dw = upload_as(dt, wpad), dbias = upload(bias);
      cuda::DeviceLinearWeight lw{dw.data(), dbias.as<float>(), dt, c.channels, stride};
      const auto out = poisoned(bytes_of(DType::kF32, rows * c.channels));
      cuda::LinearArgs args;
      args.out = out.data();
      args.in = cols.data();
      args.rows = rows;
      ASSERT_TRUE(cuda::linear(**blas, args, lw, nullptr).ok());
      auto pr = rounded(dt, pixels);
      auto wcpu = wr;
      auto bcpu = bias;
      std::vector<float> ref(static_cast<size_t>(rows * c.channels));
      ASSERT_TRUE(cpu::patch_embed(f32_view(ref.data(), {c.batch, P, c.channels}),
                                   f32_view(pr.data(), {c.batch, c.cin, c.size, c.size}),
                                   f32_view(wcpu.data(), {c.channels, c.cin, c.patch, c.patch}),
                                   f32_view(bcpu.data(), {c.channels}))
                      .ok());
      EXPECT_LE(max_rel_error(download(out, DType::kF32, ref.size()), ref), 1e-5);
    }
  }
#endif
}

TEST(CudaVisionOps, AddPositionEmbeddingsIsExact) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(13);
  const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 49, 33}};
  for (const auto& s : shapes) {
    const int64_t B = s[0], P = s[1], C = s[2];
    auto x = random_floats(rng, B * P * C);
    const auto pos = random_floats(rng, P * C);
    auto dx = upload(x);
    const auto dpos = upload(pos);
    ASSERT_TRUE(
        cuda::add_position_embeddings(dx.as<float>(), dpos.as<float>(), B, P, C, nullptr).ok());
    for (size_t i = 0; i < x.size(); ++i) x[i] += pos[i % static_cast<size_t>(P * C)];
    EXPECT_EQ(download(dx, DType::kF32, x.size()), x);
  }
#endif
}

// fp32 -> bf16 / f16 rounds like core/dtype.h (nearest even), and back is exact: the tower's
// 16-bit residual stream in and its fp32 features out.
TEST(CudaVisionOps, ConvertDtypeIsExact) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(14);
  for (const int64_t n : {int64_t{1}, int64_t{1000}, int64_t{4099}}) {
    const auto x = random_floats(rng, n, 3.0f);
    const auto dx = upload(x);
    for (DType dt : kHalfDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " n " + std::to_string(n));
      const auto half = poisoned(bytes_of(dt, static_cast<size_t>(n)));
      ASSERT_TRUE(cuda::convert_dtype(half.data(), dt, dx.data(), DType::kF32, n, nullptr).ok());
      EXPECT_EQ(download(half, dt, static_cast<size_t>(n)), rounded(dt, x));
      const auto back = poisoned(bytes_of(DType::kF32, static_cast<size_t>(n)));
      ASSERT_TRUE(cuda::convert_dtype(back.data(), DType::kF32, half.data(), dt, n, nullptr).ok());
      EXPECT_EQ(download(back, DType::kF32, static_cast<size_t>(n)), rounded(dt, x));
    }
  }
  const auto buf = poisoned(16);
  EXPECT_EQ(
      cuda::convert_dtype(buf.data(), DType::kBF16, buf.data(), DType::kF16, 4, nullptr).code(),
      StatusCode::kUnimplemented);
  EXPECT_EQ(
      cuda::convert_dtype(buf.data(), DType::kF32, buf.data(), DType::kF32, 4, nullptr).code(),
      StatusCode::kUnimplemented);
#endif
}

TEST(CudaVisionOps, GeluBiasMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(14);
  const int64_t shapes[][2] = {{1, 1}, {7, 33}, {129, 65}};
  for (const auto& s : shapes) {
    const int64_t rows = s[0], cols = s[1], n = rows * cols;
    const auto in = random_floats(rng, n, 3.0f);
    const auto bias = random_floats(rng, cols, 0.5f);
    const auto din = upload(in), dbias = upload(bias);
    for (bool tanh_approx : {false, true}) {
      for (bool with_bias : {false, true}) {
        std::vector<float> ref = in;
        if (with_bias) {
          for (int64_t i = 0; i < n; ++i) ref[i] += bias[i % cols];
        }
        ASSERT_TRUE(cpu::gelu(f32_view(ref.data(), {rows, cols}),
                              f32_view(ref.data(), {rows, cols}),
                              tanh_approx ? cpu::GeluApprox::kTanh : cpu::GeluApprox::kErf)
                        .ok());
        for (DType dt : kOutDtypes) {
          SCOPED_TRACE(std::string(dtype_name(dt)) + (tanh_approx ? " tanh" : " erf") +
                       (with_bias ? " bias" : ""));
          const auto out = poisoned(bytes_of(dt, n));
          ASSERT_TRUE(cuda::gelu_bias(out.data(), dt, din.as<float>(),
                                      with_bias ? dbias.as<float>() : nullptr, rows, cols,
                                      tanh_approx, nullptr)
                          .ok());
          const double tol = dt == DType::kF32 ? 5e-6 : (dt == DType::kBF16 ? 8e-3 : 1e-3);
          EXPECT_LE(max_rel_error(download(out, dt, static_cast<size_t>(n)), ref), tol);
        }
      }
    }
  }
#endif
}

TEST(CudaVisionOps, SpatialToChannelMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(15);
  constexpr int64_t kItems = 3, kFirst = 1, kExtra = 2;  // tokens skipped / after each item
  for (int64_t side : {1, 2, 5, 7, 27}) {
    for (int64_t k : {2, 3}) {
      for (int64_t C : {1, 6, 33}) {
        const int64_t stride = kFirst + side * side + kExtra, g = (side + k - 1) / k;
        const auto in = random_floats(rng, kItems * stride * C);
        std::vector<float> ref(static_cast<size_t>(kItems * g * g * k * k * C));
        for (int64_t n = 0; n < kItems; ++n) {
          spatial_to_channel(in.data() + (n * stride + kFirst) * C, side, C, k,
                             ref.data() + n * g * g * k * k * C);
        }
        const auto din = upload(in);
        for (DType dt : kOutDtypes) {
          SCOPED_TRACE("side " + std::to_string(side) + " k " + std::to_string(k) + " C " +
                       std::to_string(C) + " " + dtype_name(dt));
          const auto out = poisoned(bytes_of(dt, ref.size()));
          ASSERT_TRUE(cuda::spatial_to_channel(out.data(), dt, din.as<float>(), kItems, stride,
                                               kFirst, side, C, k, nullptr)
                          .ok());
          EXPECT_EQ(download(out, dt, ref.size()), rounded(dt, ref));
        }
      }
    }
  }
#endif
}

TEST(CudaVisionOps, GatherTokensIsExact) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(16);
  const int64_t items = 4, stride = 11, first = 1, tokens = 9, C = 7;
  const auto in = random_floats(rng, items * stride * C);
  const auto din = upload(in);
  for (int64_t repeat : {1, 3}) {
    std::vector<float> ref;
    for (int64_t n = 0; n < items; ++n) {
      for (int64_t t = 0; t < tokens; ++t) {
        const float* src = in.data() + (n * stride + first + t) * C;
        for (int64_t r = 0; r < repeat; ++r) ref.insert(ref.end(), src, src + C);
      }
    }
    for (DType dt : kOutDtypes) {
      const auto out = poisoned(bytes_of(dt, ref.size()));
      ASSERT_TRUE(cuda::gather_tokens(out.data(), dt, din.as<float>(), items, stride, first, tokens,
                                      C, repeat, nullptr)
                      .ok());
      EXPECT_EQ(download(out, dt, ref.size()), rounded(dt, ref)) << dtype_name(dt);
    }
  }
  EXPECT_FALSE(cuda::gather_tokens(nullptr, DType::kF32, nullptr, 1, 4, 1, 4, 1, 1, nullptr).ok());
#endif
}

TEST(CudaVisionOps, S2MergeMatchesCpu) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(17);
  struct Case {
    std::vector<int64_t> scales;
    int64_t rows, cols, g, C, resize_idx;
  };
  const Case cases[] = {{{448, 896, 1344}, 3, 4, 5, 3, -1}, {{448, 896, 1344}, 2, 3, 5, 4, -1},
                        {{448, 896, 1344}, 1, 1, 4, 2, -1}, {{448, 896, 1344}, 4, 1, 3, 5, 0},
                        {{448, 896, 1344}, 3, 2, 6, 3, 1},  {{2, 4}, 3, 2, 7, 3, -1},
                        {{1, 3, 6}, 5, 7, 3, 2, -1},        {{448, 896, 1344}, 3, 4, 32, 9, -1}};
  constexpr int64_t kFirst = 1;  // a token in front of every tile ("patch" selection)
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.rows) + "x" + std::to_string(c.cols) + " g " +
                 std::to_string(c.g) + " scales " + std::to_string(c.scales.size()) + " resize " +
                 std::to_string(c.resize_idx));
    const int64_t n_tiles = s2_tile_count(c.scales, c.rows, c.cols), L = c.g * c.g;
    const int64_t stride = L + kFirst;
    const auto strided = random_floats(rng, n_tiles * stride * c.C);
    std::vector<float> compact;
    for (int64_t t = 0; t < n_tiles; ++t) {
      compact.insert(compact.end(), strided.begin() + (t * stride + kFirst) * c.C,
                     strided.begin() + (t + 1) * stride * c.C);
    }
    std::vector<float> ref;
    int64_t out_rows = 0, out_cols = 0;
    ASSERT_TRUE(s2_merge_features(compact.data(), n_tiles, c.g, c.C, c.scales, c.rows, c.cols,
                                  c.resize_idx, ref, &out_rows, &out_cols)
                    .ok());
    const auto K = static_cast<int64_t>(c.scales.size());
    cuda::S2MergeArgs a;
    const auto din = upload(strided);
    const auto out = poisoned(ref.size() * 4);
    a.out = out.as<float>();
    a.features = din.as<float>();
    a.item_stride = stride;
    a.first_token = kFirst;
    a.g = c.g;
    a.channels = c.C;
    a.n_scales = static_cast<int>(K);
    for (int64_t s = 0; s < K; ++s) {
      a.grid_h[s] = s + 1 == K ? c.rows : c.scales[s] / c.scales[0];
      a.grid_w[s] = s + 1 == K ? c.cols : c.scales[s] / c.scales[0];
    }
    a.out_rows = out_rows;
    a.out_cols = out_cols;
    ASSERT_TRUE(cuda::s2_merge_features(a, nullptr).ok());
    const auto got = download(out, DType::kF32, ref.size());
    // The CPU's own arithmetic (fp32 window sums in (ih, iw) order, two divisions): bit-exact.
    EXPECT_EQ(golden::max_abs_diff(got.data(), ref.data(), static_cast<int64_t>(ref.size())), 0.0);

    // Fused spatial-to-channel (k = 2, 3; zero padding when g % k != 0), block by block or in
    // raster (chessboard-merged) row order: the CPU's projector spatial_to_channel of each block,
    // then merge_chessboard of the rows. Bit-exact too.
    const int64_t KC = K * c.C, blocks = out_rows * out_cols;
    for (int64_t k : {2, 3}) {
      const int64_t G = (c.g + k - 1) / k, width = k * k * KC;
      std::vector<float> stc(static_cast<size_t>(blocks * G * G * width));
      for (int64_t b = 0; b < blocks; ++b) {
        spatial_to_channel(ref.data() + b * c.g * c.g * KC, c.g, KC, k,
                           stc.data() + b * G * G * width);
      }
      std::vector<float> raster(stc.size());
      merge_chessboard(stc.data(), out_rows, out_cols, G, width, raster.data());
      for (bool in_raster : {false, true}) {
        SCOPED_TRACE("factor " + std::to_string(k) + (in_raster ? " raster" : " blocks"));
        const auto fused = poisoned(stc.size() * 4);
        cuda::S2MergeArgs f = a;
        f.out = fused.as<float>();
        f.factor = k;
        f.raster = in_raster;
        ASSERT_TRUE(cuda::s2_merge_features(f, nullptr).ok());
        const auto want = in_raster ? raster : stc;
        EXPECT_EQ(download(fused, DType::kF32, want.size()), want);
      }
    }
  }
#endif
}

TEST(CudaVisionOps, MergeChessboardIsExact) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  std::mt19937 rng(18);
  const int64_t shapes[][4] = {{1, 1, 1, 1}, {3, 4, 5, 3}, {2, 1, 11, 7}, {1, 3, 2, 64}};
  for (const auto& s : shapes) {
    const int64_t n_h = s[0], n_w = s[1], g = s[2], C = s[3];
    const auto tiles = random_floats(rng, n_h * n_w * g * g * C);
    std::vector<float> ref(tiles.size());
    merge_chessboard(tiles.data(), n_h, n_w, g, C, ref.data());
    const auto din = upload(tiles);
    const auto out = poisoned(ref.size() * 4);
    ASSERT_TRUE(
        cuda::merge_chessboard(out.as<float>(), din.as<float>(), n_h, n_w, g, C, nullptr).ok());
    EXPECT_EQ(download(out, DType::kF32, ref.size()), ref);
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// CudaVisionEncoder
// ---------------------------------------------------------------------------------------------

TEST(CudaVision, CreateFailsCleanlyWithoutGpu) {
#ifdef VILA_WITH_CUDA
  if (cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present";
#endif
  auto enc = CudaVisionEncoder::create_random(VisionGeometry::nvila_8b(), DType::kBF16, 1);
  EXPECT_FALSE(enc.ok());
}

// The tower splits an item into lanes of >= 4 tiles on their own streams (run_tower). A small
// random SigLIP (head dim 72, 64 patches per tile) over 12 tiles on 1, 2 and 3 streams: the lanes'
// features equal the one-stream features within bf16 noise (their GEMMs have other M, so
// cuBLASLt may choose other kernels), and a repeated call gives the same bits.
TEST(CudaVision, TowerLanesMatchOneStream) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  VisionGeometry g = VisionGeometry::nvila_8b();
  g.siglip.hidden = 288;
  g.siglip.intermediate = 512;
  g.siglip.n_layers = 3;
  g.siglip.n_heads = 4;
  g.siglip.image_size = 112;
  g.vision.llm_hidden = 256;
  constexpr int64_t kTiles = 12;
  const int streams[] = {1, 2, 3, 3};
  std::vector<float> out[4];
  for (int run = 0; run < 4; ++run) {
    CudaVisionOptions options;
    options.max_tiles = kTiles;
    options.tower_streams = streams[run];
    auto enc = CudaVisionEncoder::create_random(g, DType::kBF16, 11, options);
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    std::mt19937 rng(30);
    const auto tiles = random_floats(rng, kTiles * 3 * g.siglip.image_size * g.siglip.image_size);
    const Status st = (*enc)->tower_forward(tiles.data(), kTiles, out[run]);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  float range = 0.0f;
  for (const float v : out[0]) range = std::max(range, std::fabs(v));
  for (int run = 1; run < 3; ++run) {
    SCOPED_TRACE(::testing::Message() << streams[run] << " streams");
    ASSERT_EQ(out[run].size(), out[0].size());
    float worst = 0.0f;
    for (size_t i = 0; i < out[0].size(); ++i) {
      worst = std::max(worst, std::fabs(out[run][i] - out[0][i]));
    }
    EXPECT_LE(worst, 1e-2f * range) << "range " << range;
  }
  EXPECT_EQ(out[3], out[2]);
#endif
}

// GPU vs CPU projected features on every image of every case of the three vision fixtures (all
// tiles of an image as one item; the S2 grid, multi-image repeat, Lite 3x3 and VILA1.5 padded
// paths), and the tower features of the first image of each fixture.
void check_fixtures(DType dtype, double tolerance) {
  const fs::path root = fs::path(VILA_FIXTURES_DIR) / "vision";
  const auto names = golden::fixture_names("vision");
  ASSERT_EQ(names.size(), 3u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const std::string dir = (root / name).string();
    auto cpu = VisionEncoder::load(dir);
    ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
    CudaVisionOptions options;
    options.compute = dtype;
    options.max_tiles = 4;  // S2 items have up to 17 tiles: exercises regrowth
    auto gpu = CudaVisionEncoder::create(**cpu, options);
    ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
    auto pre_config = load_preprocess_config(dir);
    ASSERT_TRUE(pre_config.ok()) << pre_config.status().to_string();
    std::ifstream in(dir + "/reference.json");
    const auto reference = nlohmann::json::parse(in);
    double worst = 0, worst_tower = 0;
    bool tower_checked = false;
    for (const auto& c : reference["cases"]) {
      const auto& images = c["images"];
      for (const auto& path : images) {
        auto image = load_image((root / path.get<std::string>()).string());
        ASSERT_TRUE(image.ok()) << image.status().to_string();
        auto pre = preprocess_image(*image, *pre_config, images.size() == 1);
        ASSERT_TRUE(pre.ok()) << pre.status().to_string();
        ImageTiles tiles;
        tiles.pixels = pre->data;
        tiles.n_tiles = pre->num_tiles;
        tiles.size = pre->tile_size;
        tiles.rows = pre->block_rows;
        tiles.cols = pre->block_cols;
        int64_t n_cpu = 0, n_gpu = 0;
        auto ref = (*cpu)->encode(tiles, &n_cpu);
        ASSERT_TRUE(ref.ok()) << ref.status().to_string();
        auto got = (*gpu)->encode(tiles, &n_gpu);
        ASSERT_TRUE(got.ok()) << got.status().to_string();
        ASSERT_EQ(n_gpu, n_cpu);
        const double err = range_rel_error(*got, *ref);
        EXPECT_LE(err, tolerance) << c["name"] << " " << path;
        worst = std::max(worst, err);
        if (!tower_checked) {
          std::vector<float> tower_ref, tower_got;
          ASSERT_TRUE((*cpu)->tower_forward(tiles.pixels.data(), tiles.n_tiles, tower_ref).ok());
          ASSERT_TRUE((*gpu)->tower_forward(tiles.pixels.data(), tiles.n_tiles, tower_got).ok());
          worst_tower = range_rel_error(tower_got, tower_ref);
          EXPECT_LE(worst_tower, tolerance);
          tower_checked = true;
        }
      }
    }
    std::printf("[vision %s %s] max |gpu - cpu| / max |cpu|: features %.3e, tower %.3e\n",
                dtype_name(dtype), name.c_str(), worst, worst_tower);
  }
}

TEST(CudaVision, FixturesMatchCpuBf16) {
  VILA_SKIP_WITHOUT_GPU();
  check_fixtures(DType::kBF16, 4e-2);
}

TEST(CudaVision, FixturesMatchCpuF16) {
  VILA_SKIP_WITHOUT_GPU();
  check_fixtures(DType::kF16, 8e-3);
}

}  // namespace
}  // namespace vila
