// Timings of the GPU vision path (prints only, no assertions on time): NVILA-8B's geometry
// (SigLIP-so400m-patch14-448, dynamic S2 448/896/1344 at a 3x4 block grid = 17 tiles, 2x2
// projector into 3584 channels) with random weights made on the device, stage by stage with CUDA
// events, beside a cuBLASLt bf16 8192^3 GEMM as the peak of the same run; and the pieces the
// stages are made of (the GEMM shapes, host<->device copies) in isolation. Skips cleanly without
// CUDA or a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/vision_cuda.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/ceilings.h"
#include "backend/cuda/embedding.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#endif

#include "cuda_test_util.h"

namespace vila {
namespace {

#ifdef VILA_WITH_CUDA
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

constexpr int kRuns = 5;
constexpr int64_t kRows = 3, kCols = 4;            // the S2 block grid of a 16:9 image
constexpr int64_t kTiles = 1 + 4 + kRows * kCols;  // scales 448, 896, 1344
constexpr int64_t kPeakSide = 8192;                // the peak GEMM's M = N = K

ImageTiles random_tiles(const VisionGeometry& geometry) {
  std::mt19937 rng(19);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  ImageTiles tiles;
  tiles.n_tiles = kTiles;
  tiles.size = geometry.siglip.image_size;
  tiles.rows = kRows;
  tiles.cols = kCols;
  tiles.pixels.resize(static_cast<size_t>(kTiles * 3 * tiles.size * tiles.size));
  for (float& v : tiles.pixels) v = dist(rng);
  return tiles;
}
#endif

// FLOPs of the projector GEMMs of NVILA-8B's S2 item (12 blocks of 256 rows): 2x2 spatial-to-
// channel of 3 scales (13824 channels) -> 3584 -> 3584.
[[maybe_unused]] double projector_flops(const VisionGeometry& g, int64_t rows) {
  const auto mm = static_cast<double>(4 * 3 * g.siglip.hidden), H = static_cast<double>(3584);
  return 2.0 * static_cast<double>(rows) * H * (mm + H);
}

// The whole encode (pixels on the host -> projected features) timed end to end three ways (a new
// vector, a pinned caller buffer, left on the device), then again with stage profiling on: one
// line per stage, device ms per encode.
TEST(CudaVision, VisionTimingSo400m17Tiles) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto peak = cuda::gemm_tflops(kPeakSide, kPeakSide, kPeakSide);
  ASSERT_TRUE(peak.ok()) << peak.status().to_string();
  std::printf("[vision timing peak] cuBLASLt bf16 %lld^3: %.1f TFLOP/s\n",
              static_cast<long long>(kPeakSide), *peak);
  const VisionGeometry geometry = VisionGeometry::nvila_8b();
  const ImageTiles tiles = random_tiles(geometry);
  for (DType dt : {DType::kBF16, DType::kF16}) {
    auto enc = CudaVisionEncoder::create_random(geometry, dt, 7);
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    CudaVisionEncoder& e = **enc;
    int64_t n_tokens = 0;
    auto warm = e.encode(tiles, &n_tokens);  // plans, clocks
    ASSERT_TRUE(warm.ok()) << warm.status().to_string();
    bool finite = true;
    for (float v : *warm) finite = finite && std::isfinite(v);
    const size_t floats = warm->size();
    auto pinned = cuda::PinnedBuffer::create(floats * sizeof(float));
    ASSERT_TRUE(pinned.ok());
    const double siglip_flop = e.last_flops() - projector_flops(geometry, n_tokens);

    struct Way {
      const char* name;
      std::function<Status()> run;
    };
    const Way ways[] = {
        {"encode (new vector)", [&]() -> Status { return e.encode(tiles, &n_tokens).status(); }},
        {"encode_into (pinned)",
         [&]() { return e.encode_into(tiles, pinned->as<float>(), floats, &n_tokens); }},
        {"encode_device", [&]() -> Status { return e.encode_device(tiles).status(); }},
    };
    for (const Way& way : ways) {
      ASSERT_TRUE(way.run().ok());
      e.reset_timings();
      double upload_ms = 0, download_ms = 0;
      const auto t0 = Clock::now();
      for (int r = 0; r < kRuns; ++r) {
        ASSERT_TRUE(way.run().ok());
        upload_ms += e.last_upload_ms() / kRuns;
        download_ms += e.last_download_ms() / kRuns;
      }
      const double total_ms = ms_since(t0) / kRuns;
      const double tower_ms = e.timings().tower_ms / kRuns;
      const double s2_ms = e.timings().projector_ms / kRuns - download_ms;
      const double siglip_ms = tower_ms - upload_ms;
      std::printf(
          "[vision timing %s] %-22s %7.2f ms per call (%.1f tiles/s): pixel upload %.2f, SigLIP "
          "%.2f (%.1f TFLOP/s, %.1f %% of peak), S2+projector %.2f, download %.2f\n",
          dtype_name(dt), way.name, total_ms, kTiles / (total_ms * 1e-3), upload_ms, siglip_ms,
          siglip_flop / (siglip_ms * 1e-3) / 1e12,
          100.0 * siglip_flop / (siglip_ms * 1e-3) / 1e12 / *peak, s2_ms, download_ms);
    }
    std::printf(
        "[vision timing %s] %lld tiles -> %lld tokens (finite %d), SigLIP %.2f TFLOP, "
        "device %.2f GiB\n",
        dtype_name(dt), static_cast<long long>(kTiles), static_cast<long long>(n_tokens),
        finite ? 1 : 0, siglip_flop / 1e12,
        static_cast<double>(e.device_bytes()) / (1024.0 * 1024.0 * 1024.0));

    e.set_profiling(true);
    e.reset_timings();
    for (int r = 0; r < kRuns; ++r) {
      ASSERT_TRUE(e.encode_into(tiles, pinned->as<float>(), floats, &n_tokens).ok());
    }
    e.set_profiling(false);
    double sum = 0;
    for (const VisionStageTime& st : e.stage_times()) {
      std::printf("  [stage %s] %-28s %8.3f ms per encode (%lld calls)\n", dtype_name(dt),
                  st.name.c_str(), st.ms / kRuns, static_cast<long long>(st.calls / kRuns));
      sum += st.ms / kRuns;
    }
    std::printf("  [stage %s] sum %.3f ms\n", dtype_name(dt), sum);
  }
#endif
}

// The pieces in isolation: the GEMM shapes of SigLIP (T = 17 * 1024 rows) and the projector, with
// the variants worth knowing (bf16 bias epilogue, fp32 vs 16-bit outputs), and the host<->device
// copies of the pixels (41 MB) and the projected features (44 MB).
TEST(CudaVision, VisionTimingKernels) {
  VILA_SKIP_WITHOUT_GPU();
#ifdef VILA_WITH_CUDA
  auto stream = cuda::Stream::create();
  auto blas = cuda::Blas::create();
  auto timer = cuda::EventTimer::create();
  ASSERT_TRUE(stream.ok() && blas.ok() && timer.ok());
  void* s = stream->handle();
  struct Shape {
    const char* name;
    int64_t rows, n, k;
    DType out;
    bool accumulate, gelu, bias;
  };
  constexpr int64_t T = 17 * 1024, C = 1152, F = 4304, H = 3584;
  const Shape shapes[] = {
      {"qkv bf16+bf16 bias", T, 3 * C, C, DType::kBF16, false, false, true},
      {"qkv K=1152 bf16", T, 3 * C, C, DType::kBF16, false, false, false},
      {"qkv K=1152 f32+bias", T, 3 * C, C, DType::kF32, false, false, true},
      {"o f32 accumulate", T, C, C, DType::kF32, true, false, false},
      {"o bf16", T, C, C, DType::kBF16, false, false, false},
      {"fc1 gelu bf16+bf16 bias", T, F, C, DType::kBF16, false, true, true},
      {"fc1 K=1152 gelu bf16", T, F, C, DType::kBF16, false, true, false},
      {"fc1 K=1152 bf16", T, F, C, DType::kBF16, false, false, false},
      {"fc2 K=4304 f32 accumulate", T, C, F, DType::kF32, true, false, false},
      {"fc2 K=4352 f32 accumulate", T, C, 4352, DType::kF32, true, false, false},
      {"fc2 K=4304 bf16", T, C, F, DType::kBF16, false, false, false},
      {"proj1 3072x3584x13824 f32", 3072, H, 4 * 3 * C, DType::kF32, false, false, false},
      {"proj2 3072x3584x3584 f32+bias", 3072, H, H, DType::kF32, false, false, true},
  };
  for (const Shape& sh : shapes) {
    auto in = cuda::DeviceBuffer::create(sh.rows * sh.k * 2);
    auto w = cuda::DeviceBuffer::create(sh.n * sh.k * 2);
    auto out = cuda::DeviceBuffer::create(sh.rows * sh.n * 4);
    auto bias = cuda::DeviceBuffer::create(sh.n * 4);
    ASSERT_TRUE(in.ok() && w.ok() && out.ok() && bias.ok());
    ASSERT_TRUE(cuda::fill_uniform(in->data(), DType::kBF16, sh.rows * sh.k, -1, 1, 1, s).ok());
    ASSERT_TRUE(cuda::fill_uniform(w->data(), DType::kBF16, sh.n * sh.k, -0.03f, 0.03f, 2, s).ok());
    ASSERT_TRUE(cuda::memset_device(out->data(), 0, sh.rows * sh.n * 4, s).ok());
    ASSERT_TRUE(cuda::memset_device(bias->data(), 0, sh.n * 4, s).ok());
    cuda::DeviceLinearWeight lw{w->data(), sh.bias ? bias->as<float>() : nullptr, DType::kBF16,
                                sh.n, sh.k};
    if (sh.bias && sh.out != DType::kF32) lw.bias16 = bias->data();  // zeros read as bf16 too
    cuda::LinearArgs a;
    a.out = out->data();
    a.out_dtype = sh.out;
    a.in = in->data();
    a.rows = sh.rows;
    a.accumulate = sh.accumulate;
    a.gelu_tanh = sh.gelu;
    const Status warm = cuda::linear(**blas, a, lw, s);
    if (!warm.ok()) {
      std::printf("[vision gemm] %-32s unsupported: %s\n", sh.name, warm.to_string().c_str());
      continue;
    }
    ASSERT_TRUE(timer->start(s).ok());
    for (int r = 0; r < 2 * kRuns; ++r) ASSERT_TRUE(cuda::linear(**blas, a, lw, s).ok());
    auto ms = timer->stop_ms(s);
    ASSERT_TRUE(ms.ok());
    const double per = *ms / (2 * kRuns);
    std::printf("[vision gemm] %-32s %7.3f ms  %6.1f TFLOP/s\n", sh.name, per,
                2.0 * sh.rows * sh.n * sh.k / (per * 1e-3) / 1e12);
  }

  // Copies. Features: (12 * 256, 3584) fp32; pixels: (17, 3, 448, 448) fp32.
  const size_t feature_bytes = size_t{3072} * H * 4, pixel_bytes = size_t{17} * 3 * 448 * 448 * 4;
  auto dev = cuda::DeviceBuffer::create(feature_bytes);
  auto pinned = cuda::PinnedBuffer::create(feature_bytes);
  ASSERT_TRUE(dev.ok() && pinned.ok());
  ASSERT_TRUE(cuda::memset_device(dev->data(), 0, feature_bytes, s).ok());
  std::vector<float> reused(feature_bytes / 4);
  auto time_ms = [&](auto&& body) {
    body();  // warm
    const auto t0 = Clock::now();
    for (int r = 0; r < kRuns; ++r) body();
    return ms_since(t0) / kRuns;
  };
  const double fresh_ms = time_ms([&] {
    std::vector<float> v(feature_bytes / 4);
    ASSERT_TRUE(cuda::copy_to_host(v.data(), dev->data(), feature_bytes, s).ok());
  });
  const double reused_ms = time_ms(
      [&] { ASSERT_TRUE(cuda::copy_to_host(reused.data(), dev->data(), feature_bytes, s).ok()); });
  const double pinned_ms = time_ms([&] {
    ASSERT_TRUE(cuda::copy_to_host_async(pinned->as<char>(), dev->data(), feature_bytes, s).ok());
    ASSERT_TRUE(stream->synchronize().ok());
  });
  const double alloc_ms = time_ms([&] {
    std::vector<float> v(feature_bytes / 4);
    ASSERT_EQ(v[feature_bytes / 8], 0.0f);
  });
  const double memcpy_reused_ms =
      time_ms([&] { std::memcpy(reused.data(), pinned->as<char>(), feature_bytes); });
  std::printf(
      "[vision copy] features %.1f MB device->host: pageable into a fresh vector %.2f ms, into a "
      "reused vector %.2f ms, pinned %.2f ms (%.1f GB/s); fresh zeroed vector alone %.2f ms; host "
      "memcpy pinned->reused %.2f ms\n",
      feature_bytes / 1e6, fresh_ms, reused_ms, pinned_ms, feature_bytes / (pinned_ms * 1e6),
      alloc_ms, memcpy_reused_ms);
  std::vector<float> pixels(pixel_bytes / 4, 0.5f);
  const double up_pageable_ms = time_ms(
      [&] { ASSERT_TRUE(cuda::copy_to_device(dev->data(), pixels.data(), pixel_bytes, s).ok()); });
  const double up_pinned_ms = time_ms([&] {
    ASSERT_TRUE(cuda::copy_to_device_async(dev->data(), pinned->as<char>(), pixel_bytes, s).ok());
    ASSERT_TRUE(stream->synchronize().ok());
  });
  std::printf("[vision copy] pixels %.1f MB host->device: pageable %.2f ms, pinned %.2f ms\n",
              pixel_bytes / 1e6, up_pageable_ms, up_pinned_ms);
#endif
}

}  // namespace
}  // namespace vila
