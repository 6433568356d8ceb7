// vila bench --train (cmd_bench_train.cpp): the CUDA training step of a Qwen2-shaped LLM on random
// weights: tokens/s, model FLOPs utilisation and device memory.
#pragma once

#include <cstdint>
#include <string>

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
  int steps = 5;  // --train-steps
  std::string json_path;
};

// Registers --train, --train-shape, --seq, --recompute, --train-steps on cmd.
void add_train_bench_options(CLI::App* cmd, TrainBenchArgs* args);

// Returns the process exit code.
int run_bench_train(const TrainBenchArgs& args);

}  // namespace vila::cli
