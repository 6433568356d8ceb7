// vila bench --train (cmd_bench_train.cpp): the CUDA training step of a Qwen2-shaped LLM on random
// weights: tokens/s, model FLOPs utilisation and device memory.
#pragma once

#include <cstdint>
#include <string>

#include "train/model/vlm_config.h"

namespace CLI {
class App;
}

namespace vila::cli {

struct TrainBenchArgs {
  bool train = false;                // --train
  std::string shape = "qwen2-1.5b";  // --train-shape: qwen2-1.5b or qwen2-0.5b
  int64_t seq = 2048;                // --seq
  int64_t batch = 1;                 // --batch (the first value given)
  bool recompute = false;            // --recompute
  int warmup = 3;
  int steps = 5;      // --train-steps
  bool vlm = false;   // --vlm: the NVILA-Lite-2B-shaped VLM (LLM: --train-shape)
  int64_t tiles = 5;  // --tiles: 448 tiles per sample (--vlm)
  std::string json_path;
};

// Registers --train, --train-shape, --seq, --recompute, --train-steps on cmd.
void add_train_bench_options(CLI::App* cmd, TrainBenchArgs* args);

// Returns the process exit code.
int run_bench_train(const TrainBenchArgs& args);
// The Qwen2 geometry of --train-shape ("qwen2-1.5b": Qwen2.5-1.5B, "qwen2-0.5b"), tied embeddings.
train::LanguageConfig bench_llm_config(const std::string& shape);
#ifdef VILA_WITH_CUDA
// The bf16 GEMM peak the MFU is taken against: the best of several cuBLASLt 8192³ measurements
// (one measurement varies by several percent with clocks; the best is the conservative peak).
StatusOr<double> measured_gemm_peak();
#endif
// --vlm (cmd_bench_train_vlm.cpp).
int run_bench_train_vlm(const TrainBenchArgs& args);

}  // namespace vila::cli
