// vila bench --device cuda (cmd_bench_cuda.cpp, cmd_bench_ttft.cpp): options and entry point.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace vila::cli {

struct CudaBenchArgs {
  // nvila-8b (Qwen2-7B LLM; SigLIP-so400m + 2x2 projector, dynamic S2) or nvila-lite-2b
  // (Qwen2.5-1.5B LLM; SigLIP-so400m + 3x3 projector, dynamic tiles + thumbnail).
  std::string model_shape = "nvila-8b";
  std::string preset;  // random LLM preset; empty: the model shape's LLM
  std::string dtype = "bf16";
  std::vector<int64_t> prefill = {512, 3072, 4096};  // prompt lengths timed from empty
  std::vector<int64_t> contexts = {512, 4096};       // batch-1 decode contexts
  std::vector<int> batches = {1, 8, 32};             // decode batches (> 1) at batch_context
  int64_t batch_context = 512;
  int64_t decode_tokens = 64;
  int repeats = 3;
  // Time to first token from a JPEG / PNG file (cmd_bench_ttft.cpp); runs after one warm-up.
  bool ttft = false;
  std::string image;
  int ttft_runs = 5;
  int64_t question_tokens = 32;
  bool skip_llm = false;  // --ttft-only: no prefill / decode tables
  bool vision = true;     // the vision table (cmd_bench_vision.cpp); --no-vision skips it
  std::string json_path;
};

// Registers the cuda-only options of `vila bench` (--model-shape, --prefill, --context, --batch,
// --batch-context, --ttft, --image, --ttft-runs, --ttft-only) on cmd, writing into args.
void add_cuda_bench_options(CLI::App* cmd, CudaBenchArgs* args);

// Returns the process exit code.
int run_bench_cuda(const CudaBenchArgs& args);

}  // namespace vila::cli
