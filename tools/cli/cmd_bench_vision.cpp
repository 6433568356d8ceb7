#include "cmd_bench_vision.h"

#include <chrono>
#include <cstdio>
#include <random>

#include "core/dtype.h"
#include "model/vision_cuda.h"

namespace vila::cli {

#ifdef VILA_WITH_CUDA

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kRows = 3, kCols = 4;            // the S2 block grid of a 16:9 image
constexpr int64_t kTiles = 1 + 4 + kRows * kCols;  // scales 448, 896, 1344: 17 tiles
constexpr int kRuns = 5;

// FLOPs of the projector GEMMs of the S2 item: 2x2 spatial-to-channel of 3 scales -> H -> H.
double projector_flops(const VisionGeometry& g, int64_t rows) {
  const auto mm = static_cast<double>(4 * g.vision.s2_scales.size() * g.siglip.hidden);
  const auto h = static_cast<double>(g.vision.llm_hidden);
  return 2.0 * static_cast<double>(rows) * h * (mm + h);
}

}  // namespace

Status bench_vision(const CudaBenchArgs& args, double peak_tflops, nlohmann::json& out) {
  if (args.model_shape != "nvila-8b") {
    return unimplemented("vila bench: the vision table is only built for --model-shape nvila-8b");
  }
  VILA_ASSIGN_OR_RETURN(DType dtype, dtype_from_string(args.dtype));
  const VisionGeometry geometry = VisionGeometry::nvila_8b();
  std::fprintf(stderr, "bench: building a random SigLIP-so400m + 2x2 projector on the GPU\n");
  VILA_ASSIGN_OR_RETURN(auto encoder, CudaVisionEncoder::create_random(geometry, dtype, 7));
  ImageTiles tiles;
  tiles.n_tiles = kTiles;
  tiles.size = geometry.siglip.image_size;
  tiles.rows = kRows;
  tiles.cols = kCols;
  tiles.pixels.resize(static_cast<size_t>(kTiles * 3 * tiles.size * tiles.size));
  std::mt19937 rng(19);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : tiles.pixels) v = dist(rng);

  VILA_ASSIGN_OR_RETURN(auto warm, encoder->encode_device(tiles));  // plans, clocks
  const double siglip_flop = encoder->last_flops() - projector_flops(geometry, warm.n_tokens);
  encoder->reset_timings();
  double upload_ms = 0;
  const auto t0 = Clock::now();
  for (int r = 0; r < kRuns; ++r) {
    VILA_RETURN_IF_ERROR(encoder->encode_device(tiles).status());
    upload_ms += encoder->last_upload_ms() / kRuns;
  }
  const double total_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / kRuns;
  const double tower_ms = encoder->timings().tower_ms / kRuns;
  const double s2_ms = encoder->timings().projector_ms / kRuns;
  const double siglip_ms = tower_ms - upload_ms;
  const double tflops = siglip_flop / (siglip_ms * 1e-3) / 1e12;
  std::printf(
      "vision %lld tiles (SigLIP-so400m 448, 26 of 27 layers, S2 + 2x2 projector, rows on the "
      "device): %.2f ms per call, %.1f tiles/s; pixel upload %.2f ms, SigLIP %.2f ms %.1f "
      "TFLOP/s (%.1f%% of peak), S2+projector %.2f ms\n",
      static_cast<long long>(kTiles), total_ms, kTiles / (total_ms * 1e-3), upload_ms, siglip_ms,
      tflops, 100 * tflops / peak_tflops, s2_ms);
  out["vision"] = {{"tiles", kTiles},
                   {"ms", total_ms},
                   {"tiles_per_s", kTiles / (total_ms * 1e-3)},
                   {"upload_ms", upload_ms},
                   {"siglip_ms", siglip_ms},
                   {"siglip_tflops", tflops},
                   {"siglip_fraction_of_peak", tflops / peak_tflops},
                   {"s2_projector_ms", s2_ms},
                   {"tokens", warm.n_tokens}};

  // Where the SigLIP time goes: a call with every stage bracketed by events (summed over the
  // layers; the host waits at each stage, so only the parts are exact, not their sum). Profiling
  // runs the tower on one stream, whose GEMM shapes the first profiled call plans and tunes: the
  // second one is reported.
  encoder->set_profiling(true);
  VILA_RETURN_IF_ERROR(encoder->encode_device(tiles).status());
  encoder->reset_timings();
  VILA_RETURN_IF_ERROR(encoder->encode_device(tiles).status());
  encoder->set_profiling(false);
  nlohmann::json stages = nlohmann::json::array();
  for (const VisionStageTime& st : encoder->stage_times()) {
    std::printf("  vision stage %-20s %8.3f ms over %lld calls\n", st.name.c_str(), st.ms,
                static_cast<long long>(st.calls));
    stages.push_back({{"name", st.name}, {"ms", st.ms}, {"calls", st.calls}});
  }
  out["vision"]["stages"] = stages;
  return ok_status();
}

#else  // !VILA_WITH_CUDA

Status bench_vision(const CudaBenchArgs&, double, nlohmann::json&) {
  return unimplemented("vila bench --device cuda: this build has no CUDA");
}

#endif

}  // namespace vila::cli
