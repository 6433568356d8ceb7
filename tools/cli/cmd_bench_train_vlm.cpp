// vila bench --train --vlm: CudaVlmModel training steps (forward, backward, clipped AdamW, every
// module trained as in VILA's sft stage) on a random-weight NVILA-Lite-2B-shaped VLM: SigLIP
// so400m-patch14-448 (27 layers, hidden_states[-2]: 26 run) -> mlp_downsample_3x3_fix (121 tokens
// per tile) -> the --train-shape LLM. Each of the --batch samples is one sequence of --seq tokens:
// 16 text tokens, --tiles x 121 visual tokens, text to the end; the loss skips visual positions.
// The same model and batch as scripts/bench_torch_train.py --vlm.
//
// FLOPs per step (the PyTorch script's formula):
//   palm = B S (6 N_llm_nonembed + 12 L C S)
//        + tiles (6 N_vision 1024 + 12 L_v C_v 1024² + 6 N_proj 121)
//   N_vision: the patch embedding and the layers that run (no position table, post_layernorm or
//   unused last layer). MFU = palm / step time / the measured bf16 GEMM peak.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli_common.h"
#include "cmd_bench_train.h"
#include "core/mapped_file.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/ceilings.h"
#include "backend/cuda/device.h"
#include "train/cuda/vlm_cuda.h"
#endif

namespace vila::cli {

#ifdef VILA_WITH_CUDA

namespace {

constexpr int64_t kTextPrefix = 16;  // text tokens before the image of a sample
constexpr double kLr = 1e-4, kMaxGradNorm = 1.0;

train::VlmConfig nvila_lite_config(const std::string& llm_shape) {
  train::VlmConfig c;
  c.vision = {/*image_size=*/448,
              /*patch_size=*/14,
              /*channels=*/3,
              /*hidden=*/1152,
              /*layers=*/27,
              /*heads=*/16,
              /*intermediate=*/4304, 1e-6, -2};
  c.projector.type = "mlp_downsample_3x3_fix";
  c.llm = bench_llm_config(llm_shape);
  return c;
}

struct ParamCounts {
  double llm = 0, llm_embed = 0, vision = 0, projector = 0;
};

StatusOr<ParamCounts> count_params(const train::VlmConfig& c) {
  VILA_ASSIGN_OR_RETURN(std::vector<train::ParamSpec> specs, train::param_specs(c));
  ParamCounts n;
  const std::string layer = "vision_model.encoder.layers.";
  for (const train::ParamSpec& s : specs) {
    const auto k = static_cast<double>(s.shape.numel());
    switch (s.module) {
      case train::ParamModule::kLlm:
        n.llm += k;
        if (s.name == "model.embed_tokens.weight") n.llm_embed = k;
        break;
      case train::ParamModule::kProjector:
        n.projector += k;
        break;
      case train::ParamModule::kVisionTower: {
        if (s.name.find("position_embedding") != std::string::npos ||
            s.name.find("post_layernorm") != std::string::npos) {
          break;
        }
        if (s.name.rfind(layer, 0) == 0 &&
            std::stoll(s.name.substr(layer.size())) >= c.vision.layers_run()) {
          break;
        }
        n.vision += k;
        break;
      }
    }
  }
  return n;
}

// B samples of S tokens: ids random, targets the next id, -100 on visual positions and at each
// sample's end; tiles random pixels.
train::PackedBatch make_batch(const train::VlmConfig& c, int64_t batch, int64_t seq,
                              int64_t tiles) {
  train::PackedBatch b;
  const int64_t ti = c.tokens_per_image();
  const int64_t S = c.vision.image_size;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  b.ids.resize(static_cast<size_t>(batch * seq));
  for (auto& x : b.ids) x = static_cast<int32_t>(rng() % c.llm.vocab);
  b.targets.assign(b.ids.size(), -100);
  b.segments.resize(b.ids.size());
  for (int64_t s = 0; s < batch; ++s) {
    for (int64_t t = 0; t < seq; ++t) {
      const int64_t r = s * seq + t;
      b.segments[static_cast<size_t>(r)] = static_cast<int32_t>(s);
      const bool visual = t >= kTextPrefix && t < kTextPrefix + tiles * ti;
      const bool next_visual = t + 1 >= kTextPrefix && t + 1 < kTextPrefix + tiles * ti;
      if (!visual && !next_visual && t + 1 < seq) {
        b.targets[static_cast<size_t>(r)] = b.ids[static_cast<size_t>(r + 1)];
      }
      if (visual) b.media_rows.push_back(r);
    }
  }
  b.image_count = batch * tiles;
  b.image_size = S;
  b.tokens_per_image = ti;
  b.pixels.resize(static_cast<size_t>(b.image_count * 3 * S * S));
  for (float& x : b.pixels) x = nd(rng);
  b.samples = batch;
  return b;
}

}  // namespace

int run_bench_train_vlm(const TrainBenchArgs& args) {
  const train::VlmConfig c = nvila_lite_config(args.shape);
  const int64_t ti = c.tokens_per_image();
  if (args.seq <= kTextPrefix + args.tiles * ti) {
    return report_error(invalid_argument("bench --train --vlm: --seq " + std::to_string(args.seq) +
                                         " leaves no text after " + std::to_string(args.tiles) +
                                         " tiles of " + std::to_string(ti) + " tokens"));
  }
  auto info = cuda::device_info(0);
  if (!info.ok()) return report_error(info.status());
  auto peak = measured_gemm_peak();
  if (!peak.ok()) return report_error(peak.status());
  auto counts = count_params(c);
  if (!counts.ok()) return report_error(counts.status());
  train::CudaVlmOptions options;
  options.recompute = args.recompute;
  std::fprintf(stderr, "building the model on the device...\n");
  auto model = train::CudaVlmModel::create_random(c, 1, options);
  if (!model.ok()) return report_error(model.status());
  const train::PackedBatch batch = make_batch(c, args.batch, args.seq, args.tiles);
  train::AdamWConfig adam;
  adam.weight_decay = 0.1;
  train::DeviceParams& params = (*model)->params();
  auto step = [&]() -> StatusOr<double> {
    VILA_RETURN_IF_ERROR(params.zero_grads());
    VILA_ASSIGN_OR_RETURN(train::StepResult r, (*model)->forward_backward(batch, {}));
    VILA_RETURN_IF_ERROR(params.adamw_step(adam, kLr, kMaxGradNorm));
    return r.loss;
  };
  double loss = 0.0;
  for (int i = 0; i < args.warmup; ++i) {
    auto l = step();
    if (!l.ok()) return report_error(l.status());
    loss = *l;
  }
  auto timer = cuda::EventTimer::create();
  if (!timer.ok()) return report_error(timer.status());
  void* stream = params.stream();
  if (Status s = timer->start(stream); !s.ok()) return report_error(s);
  for (int i = 0; i < args.steps; ++i) {
    auto l = step();
    if (!l.ok()) return report_error(l.status());
    loss = *l;
  }
  auto ms = timer->stop_ms(stream);
  if (!ms.ok()) return report_error(ms.status());
  auto used = cuda::device_memory_used();
  const double step_s = *ms / 1e3 / args.steps;
  const ParamCounts& n = *counts;
  const auto tokens = static_cast<double>(args.batch * args.seq);
  const auto tiles = static_cast<double>(args.batch * args.tiles);
  const auto P = static_cast<double>(c.vision.patches());
  const double llm_f =
      tokens * (6.0 * (n.llm - n.llm_embed) +
                12.0 * static_cast<double>(c.llm.layers * c.llm.hidden * args.seq));
  const double vis_f =
      tiles * (6.0 * n.vision * P +
               12.0 * static_cast<double>(c.vision.layers_run() * c.vision.hidden) * P * P +
               6.0 * n.projector * static_cast<double>(ti));
  const double palm = llm_f + vis_f;
  const double tflops = palm / step_s / 1e12;
  std::printf(
      "vila bench --train --vlm: NVILA-Lite-2B shape (SigLIP 448, 3x3 projector, %s) on "
      "%s, seq %lld, batch %lld, %lld tiles per sample, recompute %s\n",
      args.shape.c_str(), info->name.c_str(), static_cast<long long>(args.seq),
      static_cast<long long>(args.batch), static_cast<long long>(args.tiles),
      args.recompute ? "on" : "off");
  std::printf(
      "  params: LLM %.1f M, vision (counted) %.1f M, projector %.1f M; palm FLOPs/step "
      "%.2f T (vision + projector %.2f T)\n",
      n.llm / 1e6, n.vision / 1e6, n.projector / 1e6, palm / 1e12, vis_f / 1e12);
  std::printf(
      "  step %.1f ms (mean of %d after %d warm-up), %.0f tokens/s, %.1f tiles/s, loss "
      "%.4f\n",
      step_s * 1e3, args.steps, args.warmup, tokens / step_s, tiles / step_s, loss);
  std::printf("  achieved %.1f TFLOP/s: MFU %.1f %% of the measured bf16 GEMM peak %.1f TFLOP/s\n",
              tflops, 100.0 * tflops / *peak, *peak);
  const double used_gib = used.ok() ? static_cast<double>(*used) / (1ull << 30) : -1.0;
  std::printf("  device memory in use %.1f GiB (cudaMemGetInfo, context included)\n", used_gib);
  if (!args.json_path.empty()) {
    nlohmann::json j = {{"model", "nvila-lite-2b"},
                        {"llm_shape", args.shape},
                        {"device", info->name},
                        {"seq", args.seq},
                        {"batch", args.batch},
                        {"tiles", args.tiles},
                        {"recompute", args.recompute},
                        {"step_ms", step_s * 1e3},
                        {"tokens_per_s", tokens / step_s},
                        {"palm_flops_per_step", palm},
                        {"tflops", tflops},
                        {"gemm_peak_tflops", *peak},
                        {"mfu_measured_peak", tflops / *peak},
                        {"memory_gib", used_gib},
                        {"loss", loss}};
    const std::string text = j.dump(2);
    if (Status s = write_file_atomic(args.json_path, text.data(), text.size()); !s.ok()) {
      return report_error(s);
    }
  }
  return 0;
}

#else

int run_bench_train_vlm(const TrainBenchArgs& args) {
  (void)args;
  return report_error(unimplemented("bench --train --vlm: this build has no CUDA"));
}

#endif

}  // namespace vila::cli
