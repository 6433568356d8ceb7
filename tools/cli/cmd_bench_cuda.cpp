// vila bench --device cuda: the GPU engine (LlmEngine) on random weights of real shapes built on
// the device, beside the GPU's ceilings measured in the same run (device-to-device copy
// bandwidth, cuBLASLt bf16 GEMM peak): text prefill tokens/s and TFLOP/s, decode at batch 1
// (several contexts) and larger batches with the achieved bandwidth, memory use, and with --ttft
// the time to first token from an image file (cmd_bench_ttft.cpp).
#include "cmd_bench_cuda.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli_common.h"
#include "cmd_bench_ttft.h"
#include "cmd_bench_vision.h"
#include "core/mapped_file.h"
#include "model/llm_engine.h"
#include "model/random_checkpoint.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/ceilings.h"
#endif

namespace vila::cli {

void add_cuda_bench_options(CLI::App* cmd, CudaBenchArgs* args) {
  cmd->add_option("--model-shape", args->model_shape,
                  "cuda: nvila-8b (Qwen2-7B LLM, S2 vision) or nvila-lite-2b (Qwen2.5-1.5B LLM, "
                  "3x3 projector); --preset overrides the LLM")
      ->check(CLI::IsMember({"nvila-8b", "nvila-lite-2b"}));
  cmd->add_option("--prefill", args->prefill, "cuda: prompt lengths to time (512 3072 4096)");
  cmd->add_option("--context", args->contexts, "cuda: batch-1 decode contexts (512 4096)");
  cmd->add_option("--batch", args->batches, "cuda: decode batch sizes (1 8 32)");
  cmd->add_option("--batch-context", args->batch_context,
                  "cuda: context of the batched decode runs (512)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--ttft", args->ttft,
                "cuda: time to first token from --image (decode, tiling, vision, prefill)");
  cmd->add_option("--image", args->image, "cuda: the image file of --ttft (JPEG or PNG)");
  cmd->add_option("--ttft-runs", args->ttft_runs, "cuda: timed --ttft runs after a warm-up (5)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--ttft-only", args->skip_llm, "cuda: with --ttft, skip the prefill/decode tables");
  cmd->add_flag("!--no-vision", args->vision,
                "cuda: skip the vision table (17 tiles through SigLIP + S2 + projector)");
}

#ifdef VILA_WITH_CUDA

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

LlmConfig config_from_spec(const RandomLlmSpec& s) {
  LlmConfig c;
  c.arch = s.architecture == "LlamaForCausalLM" ? LlmArch::kLlama : LlmArch::kQwen2;
  c.arch_name = s.architecture;
  c.hidden = s.hidden;
  c.n_layers = s.layers;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.intermediate = s.intermediate;
  c.vocab_size = s.vocab;
  c.max_position = s.max_position;
  c.rms_eps = s.rms_eps;
  c.rope_theta = s.rope_theta;
  c.tie_embeddings = s.tie_embeddings;
  c.qkv_bias = c.arch == LlmArch::kQwen2;
  return c;
}

struct Geometry {
  double linear_params = 0;  // every decoder linear weight
  double head_params = 0;    // lm_head (V * C)
  double kv_bytes_per_position = 0;
  double weight_bytes = 0;  // read per decode step (everything but the embedding table)
};

Geometry geometry(const LlmConfig& c, DType dtype) {
  Geometry g;
  const double C = static_cast<double>(c.hidden), F = static_cast<double>(c.intermediate);
  const double HD = static_cast<double>(c.n_heads * c.head_dim);
  const double KD = static_cast<double>(c.n_kv_heads * c.head_dim);
  g.linear_params = static_cast<double>(c.n_layers) * (C * (HD + 2 * KD) + HD * C + 3 * C * F);
  g.head_params = static_cast<double>(c.vocab_size) * C;
  const double bytes = static_cast<double>(dtype_bytes(dtype, 1));
  g.kv_bytes_per_position = static_cast<double>(c.n_layers) * 2 * KD * bytes;
  g.weight_bytes = (g.linear_params + g.head_params) * bytes;
  return g;
}

// FLOPs of a prefill of T tokens (head on the last row only), causal attention counted half.
double prefill_flops(const LlmConfig& c, const Geometry& g, double t) {
  return 2 * g.linear_params * t + 2 * g.head_params +
         4.0 * static_cast<double>(c.n_layers * c.n_heads * c.head_dim) * t * (t + 1) / 2;
}

std::vector<float> prompt_embeds(int64_t n, int64_t hidden) {
  std::vector<float> e(static_cast<size_t>(n * hidden));
  for (size_t i = 0; i < e.size(); ++i) e[i] = 0.02f * static_cast<float>((i * 7919) % 101) - 1.0f;
  return e;
}

}  // namespace

int run_bench_cuda(const CudaBenchArgs& args_in) {
  CudaBenchArgs args = args_in;
  if (args.preset.empty()) {
    auto preset = llm_preset_of_shape(args.model_shape);
    if (!preset.ok()) return report_error(preset.status());
    args.preset = *preset;
  }
  if (args.ttft && args.image.empty()) {
    return report_error(invalid_argument("vila bench --ttft needs --image FILE"));
  }
  if (args.skip_llm) {  // --ttft-only: size the engine for the TTFT prompt alone
    args.prefill.clear();
    args.contexts.clear();
    args.batches = {1};
  }
  auto spec = random_llm_preset(args.preset);
  if (!spec.ok()) return report_error(spec.status());
  auto dtype = dtype_from_string(args.dtype);
  if (!dtype.ok()) return report_error(dtype.status());
  const LlmConfig config = config_from_spec(*spec);
  const Geometry geo = geometry(config, *dtype);

  std::fprintf(stderr, "bench: measuring ceilings (device copy 1 GiB, cuBLASLt bf16 8192^3)\n");
  nlohmann::json out_vision;  // filled before the LLM is built, merged into `out` below
  auto copy = cuda::copy_bandwidth_gbps(size_t{1} << 30);
  if (!copy.ok()) return report_error(copy.status());
  auto peak = cuda::gemm_tflops(8192, 8192, 8192);
  if (!peak.ok()) return report_error(peak.status());

  if (args.vision && !args.skip_llm && args.model_shape == "nvila-8b") {
    if (Status s = bench_vision(args, *peak, out_vision); !s.ok()) return report_error(s);
  }

  int64_t max_prefill =
      args.prefill.empty() ? 1 : *std::max_element(args.prefill.begin(), args.prefill.end());
  if (args.ttft) max_prefill = std::max(max_prefill, ttft_max_prompt_tokens(args));
  const int64_t max_context =
      args.contexts.empty() ? 1 : *std::max_element(args.contexts.begin(), args.contexts.end());
  const int max_batch =
      args.batches.empty() ? 1 : *std::max_element(args.batches.begin(), args.batches.end());
  LlmEngineOptions o;
  o.dtype = *dtype;
  o.max_batch = std::max(1, max_batch);
  o.max_seq = std::max(max_prefill, max_context) + args.decode_tokens + 8;
  o.max_chunk = max_prefill;
  const int64_t pages_per = (o.max_seq + 63) / 64;
  const int64_t pages_batch = (args.batch_context + args.decode_tokens + 8 + 63) / 64;
  o.num_pages = std::max<int64_t>(pages_per, pages_batch * o.max_batch) + 1;
  o.progress = [last = -1](const std::string& stage, double f) mutable {
    const int percent = static_cast<int>(100 * f);
    if (percent == last) return;  // one line per whole percent
    last = percent;
    std::fprintf(stderr, "\rbench: %s %3d%%", stage.c_str(), percent);
    if (percent >= 100) std::fprintf(stderr, "\n");
  };
  std::fprintf(stderr, "bench: building random %s (%s) on the GPU\n", args.preset.c_str(),
               dtype_name(*dtype));
  auto engine_or = LlmEngine::create_random(config, o, 1234);
  if (!engine_or.ok()) return report_error(engine_or.status());
  LlmEngine& engine = **engine_or;
  const LlmEngineMemory mem = engine.memory();
  std::vector<float> logits(static_cast<size_t>(config.vocab_size * o.max_batch));

  nlohmann::json out = {{"model_shape", args.model_shape},  {"preset", args.preset},
                        {"dtype", dtype_name(*dtype)},      {"copy_gbps", *copy},
                        {"gemm_bf16_tflops", *peak},        {"prefill", nlohmann::json::array()},
                        {"decode", nlohmann::json::array()}};
  std::printf("%s %s | ceilings: device copy %.0f GB/s, cuBLASLt bf16 %.0f TFLOP/s\n",
              args.preset.c_str(), dtype_name(*dtype), *copy, *peak);
  if (out_vision.contains("vision")) out["vision"] = out_vision["vision"];

  // Prefill: one sequence of T tokens from empty; best of `repeats` after a warm-up.
  for (int64_t t : args.prefill) {
    const auto embeds = prompt_embeds(t, config.hidden);
    double best = 1e30;
    for (int r = 0; r <= args.repeats; ++r) {
      auto seq = engine.new_sequence();
      if (!seq.ok()) return report_error(seq.status());
      const auto t0 = Clock::now();
      if (Status s = engine.prefill(*seq, embeds.data(), t, logits.data(), 1); !s.ok()) {
        return report_error(s);
      }
      if (r > 0) best = std::min(best, ms_since(t0));
      engine.release(*seq);
    }
    const double tflops = prefill_flops(config, geo, static_cast<double>(t)) / (best * 1e-3) / 1e12;
    std::printf("prefill %5lld tokens: %8.2f ms  %9.0f tok/s  %6.1f TFLOP/s (%4.1f%% of peak)\n",
                static_cast<long long>(t), best, static_cast<double>(t) / (best * 1e-3), tflops,
                100 * tflops / *peak);
    out["prefill"].push_back({{"tokens", t},
                              {"ms", best},
                              {"tokens_per_s", static_cast<double>(t) / (best * 1e-3)},
                              {"tflops", tflops}});
  }

  // Decode: `batch` sequences prefilled to `context`, then decode_tokens greedy steps.
  auto bench_decode = [&](int batch, int64_t context) -> Status {
    std::vector<int> seqs;
    const auto embeds = prompt_embeds(context, config.hidden);
    for (int b = 0; b < batch; ++b) {
      VILA_ASSIGN_OR_RETURN(int seq, engine.new_sequence());
      seqs.push_back(seq);
      VILA_RETURN_IF_ERROR(engine.prefill(seq, embeds.data(), context, logits.data(), 1));
    }
    std::vector<int32_t> tokens(static_cast<size_t>(batch), 1), next;
    SamplingParams greedy;
    constexpr int kWarmup = 3;
    for (int i = 0; i < kWarmup; ++i) {
      VILA_RETURN_IF_ERROR(engine.decode(seqs, tokens, greedy, i, next));
      tokens = next;
    }
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < args.decode_tokens; ++i) {
      VILA_RETURN_IF_ERROR(engine.decode(seqs, tokens, greedy, i, next));
      tokens = next;
    }
    const double ms = ms_since(t0) / static_cast<double>(args.decode_tokens);
    for (int seq : seqs) engine.release(seq);
    const double mid = static_cast<double>(context) + kWarmup + args.decode_tokens / 2.0;
    const double bytes = geo.weight_bytes + batch * mid * geo.kv_bytes_per_position;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    std::printf(
        "decode batch %2d context %5lld: %7.3f ms/step  %8.1f tok/s  %6.0f GB/s (%4.1f%% of "
        "copy)\n",
        batch, static_cast<long long>(context), ms, batch / (ms * 1e-3), gbps, 100 * gbps / *copy);
    out["decode"].push_back({{"batch", batch},
                             {"context", context},
                             {"ms_per_step", ms},
                             {"tokens_per_s", batch / (ms * 1e-3)},
                             {"gbps", gbps}});
    return ok_status();
  };
  for (int64_t context : args.contexts) {
    if (Status s = bench_decode(1, context); !s.ok()) return report_error(s);
  }
  for (int batch : args.batches) {
    if (batch <= 1) continue;
    if (Status s = bench_decode(batch, args.batch_context); !s.ok()) return report_error(s);
  }

  if (args.ttft) {
    if (Status s = bench_ttft(args, engine, out); !s.ok()) return report_error(s);
  }

  auto used = cuda::device_memory_used();
  const double gib = 1024.0 * 1024 * 1024;
  std::printf(
      "memory: weights %.2f GiB, KV pool %.2f GiB, activations %.2f GiB, cuBLASLt workspace "
      "%.2f GiB; engine %.2f GiB; device in use %.2f GiB (CUDA context included)\n",
      mem.weights / gib, mem.kv_cache / gib, mem.activations / gib, mem.workspace / gib,
      mem.total() / gib, used.ok() ? *used / gib : -1.0);
  out["memory"] = {{"weights", mem.weights},
                   {"kv_cache", mem.kv_cache},
                   {"activations", mem.activations},
                   {"workspace", mem.workspace},
                   {"device_used", used.ok() ? *used : 0}};
  if (!args.json_path.empty()) {
    const std::string text = out.dump(2);
    if (Status s = write_file_atomic(args.json_path, text.data(), text.size()); !s.ok()) {
      return report_error(s);
    }
  }
  return 0;
}

#else  // !VILA_WITH_CUDA

int run_bench_cuda(const CudaBenchArgs&) {
  return report_error(
      unimplemented("vila bench --device cuda: built without CUDA (VILA_CUDA=OFF)"));
}

#endif

}  // namespace vila::cli
