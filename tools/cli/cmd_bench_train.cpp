// vila bench --train: CudaLlmTrainer steps (forward, backward, AdamW) on a random-weight Qwen2 LLM
// of real shape, after warm-up steps, timed with CUDA events; beside the cuBLASLt bf16 GEMM peak
// measured in the same run and the H100 SXM datasheet figure (989 TFLOP/s dense bf16).
//
// FLOPs per step (PaLM appendix B, the same formula as scripts/bench_torch_train.py):
//   palm      = B T (6 N_nonembed + 12 L C T)   N_nonembed: every parameter but the token
//               embedding (a tied lm_head is not counted); the attention term counts the full
//               T x T score and value products (no causal halving)
//   6n_total  = B T 6 N_total
//   MFU = palm / step time / peak.
#include "cmd_bench_train.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "cli_common.h"
#include "core/mapped_file.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/ceilings.h"
#include "backend/cuda/device.h"
#include "train/cuda/llm_trainer_cuda.h"
#endif

namespace vila::cli {

namespace {
constexpr double kDatasheetTflops = 989.0;  // H100 SXM5 dense bf16
constexpr int64_t kPeakGemm = 8192;         // m = n = k of the measured GEMM ceiling
constexpr int kPeakTrials = 3;              // measurements of it; the best counts
constexpr int kPeakRepeats = 10;            // GEMMs per measurement
constexpr double kLr = 1e-4;
}  // namespace

void add_train_bench_options(CLI::App* cmd, TrainBenchArgs* args) {
  cmd->add_flag("--train", args->train,
                "CUDA training step (forward + backward + AdamW) of a random Qwen2 LLM");
  cmd->add_option("--train-shape", args->shape, "qwen2-1.5b or qwen2-0.5b")
      ->check(CLI::IsMember({"qwen2-1.5b", "qwen2-0.5b"}));
  cmd->add_option("--seq", args->seq, "Training sequence length")->check(CLI::PositiveNumber);
  cmd->add_flag("--recompute", args->recompute, "Activation recomputation per layer");
  cmd->add_option("--train-steps", args->steps, "Timed training steps")->check(CLI::PositiveNumber);
  cmd->add_option("--train-warmup", args->warmup, "Untimed warm-up steps before them")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--vlm", args->vlm,
                "With --train: the NVILA-Lite-2B-shaped VLM (SigLIP 448 + 3x3 projector + LLM)");
  cmd->add_option("--tiles", args->tiles, "With --vlm: 448 tiles per sample")
      ->check(CLI::PositiveNumber);
}

train::LanguageConfig bench_llm_config(const std::string& shape) {
  train::LanguageConfig c;
  if (shape == "qwen2-1.5b") {
    c.hidden = 1536, c.layers = 28, c.heads = 12, c.kv_heads = 2, c.intermediate = 8960;
  } else {
    c.hidden = 896, c.layers = 24, c.heads = 14, c.kv_heads = 2, c.intermediate = 4864;
  }
  c.vocab = 151936;
  c.max_position = 32768;
  c.rope_theta = 1e6;
  c.tie_word_embeddings = true;
  return c;
}

#ifdef VILA_WITH_CUDA
StatusOr<double> measured_gemm_peak() {
  double best = 0.0;
  for (int trial = 0; trial < kPeakTrials; ++trial) {
    VILA_ASSIGN_OR_RETURN(const double t,
                          cuda::gemm_tflops(kPeakGemm, kPeakGemm, kPeakGemm, kPeakRepeats));
    best = std::max(best, t);
  }
  return best;
}
#endif

int run_bench_train(const TrainBenchArgs& args) {
#ifndef VILA_WITH_CUDA
  (void)args;
  return report_error(unimplemented("bench --train: this build has no CUDA"));
#else
  if (cuda::device_count() == 0) return report_error(unimplemented("bench --train: no GPU"));
  if (args.vlm) return run_bench_train_vlm(args);
  const train::LanguageConfig c = bench_llm_config(args.shape);
  auto info = cuda::device_info(0);
  if (!info.ok()) return report_error(info.status());
  auto peak = measured_gemm_peak();
  if (!peak.ok()) return report_error(peak.status());
  train::CudaTrainOptions opt;
  opt.batch = args.batch;
  opt.seq = args.seq;
  opt.recompute = args.recompute;
  opt.weight_decay = 0.1;
  opt.max_grad_norm = 1.0;
  auto tr = train::CudaLlmTrainer::create(c, opt, nullptr, 1);
  if (!tr.ok()) return report_error(tr.status());
  const int64_t R = args.batch * args.seq;
  std::vector<int32_t> ids(static_cast<size_t>(R)), targets(ids.size());
  std::mt19937 rng(3);
  for (auto& x : ids) x = static_cast<int32_t>(rng() % c.vocab);
  for (size_t i = 0; i < ids.size(); ++i) targets[i] = ids[(i + 1) % ids.size()];
  auto timer = cuda::EventTimer::create();
  if (!timer.ok()) return report_error(timer.status());
  double loss = 0.0;
  for (int i = 0; i < args.warmup; ++i) {
    auto l = (*tr)->forward_backward(ids.data(), targets.data());
    if (!l.ok()) return report_error(l.status());
    if (Status s = (*tr)->optimizer_step(kLr); !s.ok()) return report_error(s);
    loss = *l;
  }
  if (Status s = timer->start((*tr)->stream()); !s.ok()) return report_error(s);
  for (int i = 0; i < args.steps; ++i) {
    auto l = (*tr)->forward_backward(ids.data(), targets.data());
    if (!l.ok()) return report_error(l.status());
    if (Status s = (*tr)->optimizer_step(kLr); !s.ok()) return report_error(s);
    loss = *l;
  }
  auto ms = timer->stop_ms((*tr)->stream());
  if (!ms.ok()) return report_error(ms.status());
  auto used = cuda::device_memory_used();
  const double step_s = *ms / 1e3 / args.steps;
  const auto n_total = static_cast<double>((*tr)->parameter_count());
  const auto n_embed = static_cast<double>(c.vocab * c.hidden);
  const double tokens = static_cast<double>(R);
  const double palm = tokens * (6.0 * (n_total - n_embed) +
                                12.0 * static_cast<double>(c.layers * c.hidden * args.seq));
  const double six_n = tokens * 6.0 * n_total;
  const double tflops = palm / step_s / 1e12;
  std::printf("vila bench --train: %s on %s, seq %lld, batch %lld, recompute %s\n",
              args.shape.c_str(), info->name.c_str(), static_cast<long long>(args.seq),
              static_cast<long long>(args.batch), args.recompute ? "on" : "off");
  std::printf("  params %.1f M (non-embedding %.1f M); palm FLOPs/step %.2f T, 6N %.2f T\n",
              n_total / 1e6, (n_total - n_embed) / 1e6, palm / 1e12, six_n / 1e12);
  std::printf("  step %.1f ms (mean of %d after %d warm-up), %.0f tokens/s, loss %.4f\n",
              step_s * 1e3, args.steps, args.warmup, tokens / step_s, loss);
  std::printf(
      "  achieved %.1f TFLOP/s: MFU %.1f %% of the measured bf16 GEMM peak %.1f TFLOP/s, "
      "%.1f %% of the %.0f datasheet\n",
      tflops, 100.0 * tflops / *peak, *peak, 100.0 * tflops / kDatasheetTflops, kDatasheetTflops);
  const double used_gib = used.ok() ? static_cast<double>(*used) / (1ull << 30) : -1.0;
  std::printf("  device memory in use %.1f GiB (cudaMemGetInfo, context included)\n", used_gib);
  if (!args.json_path.empty()) {
    nlohmann::json j = {{"shape", args.shape},
                        {"device", info->name},
                        {"seq", args.seq},
                        {"batch", args.batch},
                        {"recompute", args.recompute},
                        {"step_ms", step_s * 1e3},
                        {"tokens_per_s", tokens / step_s},
                        {"palm_flops_per_step", palm},
                        {"six_n_flops_per_step", six_n},
                        {"tflops", tflops},
                        {"gemm_peak_tflops", *peak},
                        {"mfu_measured_peak", tflops / *peak},
                        {"mfu_datasheet", tflops / kDatasheetTflops},
                        {"memory_gib", used_gib},
                        {"loss", loss}};
    const std::string text = j.dump(2);
    if (Status s = write_file_atomic(args.json_path, text.data(), text.size()); !s.ok()) {
      return report_error(s);
    }
  }
  return 0;
#endif
}

}  // namespace vila::cli
