// vila bench --device cuda (cmd_bench_cuda.cpp): options and entry point.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vila::cli {

struct CudaBenchArgs {
  std::string preset = "qwen2-7b";
  std::string dtype = "bf16";
  std::vector<int64_t> prefill = {512, 4096};   // prompt lengths timed from empty
  std::vector<int64_t> contexts = {512, 4096};  // batch-1 decode contexts
  std::vector<int> batches = {1, 8, 32};        // decode batches (> 1) at batch_context
  int64_t batch_context = 512;
  int64_t decode_tokens = 64;
  int repeats = 3;
  std::string json_path;
};

// Returns the process exit code.
int run_bench_cuda(const CudaBenchArgs& args);

}  // namespace vila::cli
