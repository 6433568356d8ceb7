// vila bench: CPU prefill and decode throughput of a random-weight model of real shape, beside two
// ceilings measured in the same run (OpenBLAS sgemm FLOP/s, memory copy bandwidth).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "cli_common.h"
#include "cmd_bench_cuda.h"
#include "cmd_bench_train.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "model/random_checkpoint.h"
#include "runtime/kv_cache.h"

namespace vila::cli {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct BenchArgs {
  std::string model;  // optional real checkpoint folder
  std::string preset = "qwen2-0.5b";
  std::vector<std::string> dtypes = {"f32", "bf16"};
  int64_t prompt_tokens = 128;
  int64_t decode_tokens = 32;
  int repeats = 2;
  std::string json_path;
  std::string cache_dir = "/tmp/vila-bench";
};

// Best-of-n sgemm rate at the shape of one prefill projection, in GFLOP/s.
double measure_sgemm_gflops(int64_t m, int64_t n, int64_t k) {
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(n * k)),
      c(static_cast<size_t>(m * n));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                static_cast<int>(k), 1.0f, a.data(), static_cast<int>(k), b.data(),
                static_cast<int>(k), 0.0f, c.data(), static_cast<int>(n));
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * static_cast<double>(m * n * k) / best / 1e9;
}

// Copy bandwidth counting bytes read + written, in GB/s (threaded like the decode GEMV).
double measure_copy_gbps(size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  ThreadPool& pool = ThreadPool::global();
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    pool.parallel_for(static_cast<int64_t>(pool.size()), [&](int64_t begin, int64_t end) {
      for (int64_t part = begin; part < end; ++part) {
        const size_t lo = bytes * static_cast<size_t>(part) / static_cast<size_t>(pool.size());
        const size_t hi = bytes * static_cast<size_t>(part + 1) / static_cast<size_t>(pool.size());
        std::memcpy(dst.data() + lo, src.data() + lo, hi - lo);
      }
    });
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * static_cast<double>(bytes) / best / 1e9;
}

struct ModelRun {
  std::string label;
  int64_t params = 0;
  double prefill_flops = 0;  // GEMM + attention FLOPs of one prefill (head on the last row only)
  double weight_bytes = 0;   // bytes read per decode step (all weights once)
  double prefill_s = 0, decode_s = 0;
  int64_t prompt_tokens = 0, decode_tokens = 0;
};

Status bench_model(const std::string& dir, const std::string& label, const BenchArgs& args,
                   ModelRun& run) {
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<LanguageModel> llm, LanguageModel::load(dir));
  const LlmConfig& c = llm->config();
  run.label = label;
  run.params = llm->parameter_count();
  const double embed_bytes =
      static_cast<double>(dtype_bytes(c.weight_dtype, c.vocab_size * c.hidden));
  // Decode reads every weight once except the embedding table (one row), unless it is the head.
  run.weight_bytes = static_cast<double>(dtype_bytes(c.weight_dtype, run.params)) -
                     (c.tie_embeddings ? 0.0 : embed_bytes);
  run.prompt_tokens = args.prompt_tokens;
  run.decode_tokens = args.decode_tokens;
  // Every linear weight multiplies every prompt row (2 FLOPs per weight per row); the embedding is
  // a gather, the head runs on the last row only; causal attention adds QK^T and PV over P^2/2
  // pairs.
  const double table = static_cast<double>(c.vocab_size * c.hidden);
  const double linear_params =
      static_cast<double>(run.params) - table * (c.tie_embeddings ? 1.0 : 2.0);
  const auto p = static_cast<double>(args.prompt_tokens);
  run.prefill_flops =
      2.0 * linear_params * p + 2.0 * table +
      2.0 * 2.0 * static_cast<double>(c.n_layers * c.n_heads * c.head_dim) * p * (p + 1) / 2.0;
  std::vector<int32_t> ids(static_cast<size_t>(args.prompt_tokens));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7919) % c.vocab_size);
  std::vector<float> embeds(static_cast<size_t>(args.prompt_tokens * c.hidden));
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  run.prefill_s = run.decode_s = 1e30;
  for (int r = 0; r < args.repeats; ++r) {
    KvCache cache = llm->make_cache(args.prompt_tokens + args.decode_tokens);
    VILA_RETURN_IF_ERROR(llm->embed(ids.data(), args.prompt_tokens, embeds.data()));
    auto t0 = Clock::now();
    VILA_RETURN_IF_ERROR(llm->forward(embeds.data(), args.prompt_tokens, cache, logits.data(), 1));
    run.prefill_s = std::min(run.prefill_s, seconds_since(t0));
    t0 = Clock::now();
    for (int64_t step = 0; step < args.decode_tokens; ++step) {
      const int32_t id = static_cast<int32_t>(step % c.vocab_size);
      VILA_RETURN_IF_ERROR(llm->embed(&id, 1, embeds.data()));
      VILA_RETURN_IF_ERROR(llm->forward(embeds.data(), 1, cache, logits.data(), 1));
    }
    run.decode_s = std::min(run.decode_s, seconds_since(t0));
    std::fprintf(stderr, "bench: %s run %d/%d: prefill %.2f s, decode %.2f s\n", label.c_str(),
                 r + 1, args.repeats, run.prefill_s, run.decode_s);
  }
  return ok_status();
}

int run_bench(const BenchArgs& args) {
  std::vector<std::pair<std::string, std::string>> models;  // (label, dir)
  if (!args.model.empty()) {
    models.emplace_back(args.model, args.model);
  } else {
    auto spec_or = random_llm_preset(args.preset);
    if (!spec_or.ok()) return report_error(spec_or.status());
    for (const std::string& dtype_str : args.dtypes) {
      auto dtype = dtype_from_string(dtype_str);
      if (!dtype.ok()) return report_error(dtype.status());
      RandomLlmSpec spec = *spec_or;
      spec.dtype = *dtype;
      const std::string dir = args.cache_dir + "/" + args.preset + "-" + dtype_name(*dtype);
      if (!file_exists(path_join(dir, "model.safetensors"))) {
        std::fprintf(stderr, "bench: writing random %s weights (%s) to %s\n", args.preset.c_str(),
                     dtype_name(*dtype), dir.c_str());
        if (Status s = write_random_llm(dir, spec); !s.ok()) return report_error(s);
      }
      models.emplace_back(args.preset + " " + dtype_name(*dtype), dir);
    }
  }

  std::fprintf(stderr, "bench: measuring ceilings (sgemm, memory copy)\n");
  auto preset = random_llm_preset(args.preset);
  const int64_t k = preset.ok() ? preset->hidden : 896;
  const int64_t n = preset.ok() ? preset->intermediate : 4864;
  const double sgemm_gflops = measure_sgemm_gflops(args.prompt_tokens, n, k);
  const double copy_gbps = measure_copy_gbps(size_t{512} << 20);

  std::vector<ModelRun> runs;
  for (const auto& [label, dir] : models) {
    ModelRun run;
    if (Status s = bench_model(dir, label, args, run); !s.ok()) return report_error(s);
    runs.push_back(run);
  }

  nlohmann::json out = {{"threads", ThreadPool::global().size()},
                        {"sgemm_gflops", sgemm_gflops},
                        {"sgemm_shape", {args.prompt_tokens, n, k}},
                        {"copy_gbps", copy_gbps},
                        {"runs", nlohmann::json::array()}};
  std::printf(
      "threads %d | ceilings: OpenBLAS sgemm %.1f GFLOP/s (%lldx%lldx%lld), copy %.1f GB/s\n",
      ThreadPool::global().size(), sgemm_gflops, static_cast<long long>(args.prompt_tokens),
      static_cast<long long>(n), static_cast<long long>(k), copy_gbps);
  std::printf("%-20s %10s %12s %10s %12s %10s %10s\n", "model", "params", "prefill t/s", "GFLOP/s",
              "%sgemm", "decode t/s", "GB/s");
  for (const ModelRun& r : runs) {
    const double prefill_tps = static_cast<double>(r.prompt_tokens) / r.prefill_s;
    const double decode_tps = static_cast<double>(r.decode_tokens) / r.decode_s;
    const double prefill_gflops = r.prefill_flops / r.prefill_s / 1e9;
    const double decode_gbps = r.weight_bytes * decode_tps / 1e9;
    std::printf("%-20s %9.0fM %12.1f %10.1f %11.0f%% %10.2f %10.1f\n", r.label.c_str(),
                static_cast<double>(r.params) / 1e6, prefill_tps, prefill_gflops,
                100.0 * prefill_gflops / sgemm_gflops, decode_tps, decode_gbps);
    out["runs"].push_back({{"model", r.label},
                           {"parameters", r.params},
                           {"prompt_tokens", r.prompt_tokens},
                           {"decode_tokens", r.decode_tokens},
                           {"prefill_tokens_per_s", prefill_tps},
                           {"prefill_gflops", prefill_gflops},
                           {"decode_tokens_per_s", decode_tps},
                           {"decode_weight_gbps", decode_gbps}});
  }
  std::printf(
      "(prefill GFLOP/s: linear layers on every prompt row, the head on the last, causal "
      "attention; decode GB/s: every weight read once per token)\n");
  if (!args.json_path.empty()) {
    const std::string text = out.dump(2);
    if (Status s = write_file_atomic(args.json_path, text.data(), text.size()); !s.ok()) {
      return report_error(s);
    }
  }
  return 0;
}
}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  auto cuda_args = std::make_shared<CudaBenchArgs>();
  auto device = std::make_shared<std::string>("cpu");
  auto train_args = std::make_shared<TrainBenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Prefill/decode throughput (CPU or CUDA) beside ceilings measured in the same run");
  cmd->add_option("--device", *device, "cpu, or cuda (the GPU engine on random weights)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  add_cuda_bench_options(cmd, cuda_args.get());
  add_train_bench_options(cmd, train_args.get());
  cmd->add_option("--model", args->model, "Benchmark this checkpoint instead of a random one");
  cmd->add_option("--preset", args->preset,
                  "Random model shape: qwen2-0.5b, qwen2-1.5b, qwen2-7b, tiny");
  cmd->add_option("--dtype", args->dtypes, "Weight dtypes of the random model (f32, bf16, f16)");
  cmd->add_option("--prompt-tokens", args->prompt_tokens, "Prefill length")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decode-tokens", args->decode_tokens, "Decode steps")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeats", args->repeats, "Runs per model; the best is reported")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cache-dir", args->cache_dir, "Where random checkpoints are kept");
  cmd->add_option("--json", args->json_path, "Also write the results to this JSON file");
  cmd->callback([args, cuda_args, train_args, device, cmd, &exit_code] {
    if (train_args->train) {
      TrainBenchArgs t = *train_args;
      if (!cuda_args->batches.empty()) t.batch = cuda_args->batches.front();
      t.json_path = args->json_path;
      exit_code = run_bench_train(t);
      return;
    }
    if (*device == "cpu") {
      exit_code = run_bench(*args);
      return;
    }
    CudaBenchArgs a = *cuda_args;
    if (cmd->count("--preset") > 0) a.preset = args->preset;
    if (cmd->count("--dtype") > 0) a.dtype = args->dtypes.front();
    if (cmd->count("--decode-tokens") > 0) a.decode_tokens = args->decode_tokens;
    if (cmd->count("--repeats") > 0) a.repeats = args->repeats;
    a.json_path = args->json_path;
    exit_code = run_bench_cuda(a);
  });
}

}  // namespace vila::cli
