// Writes a random-weight LLM checkpoint folder (config.json + model.safetensors) of a given shape,
// for benchmarks and tests that need real geometry without a download.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/status.h"

namespace vila {

struct RandomLlmSpec {
  std::string architecture = "Qwen2ForCausalLM";  // or LlamaForCausalLM
  int64_t hidden = 896;
  int64_t layers = 24;
  int64_t heads = 14;
  int64_t kv_heads = 2;
  int64_t intermediate = 4864;
  int64_t vocab = 151936;
  int64_t max_position = 32768;
  bool tie_embeddings = true;
  double rope_theta = 1e6;
  double rms_eps = 1e-6;
  DType dtype = DType::kBF16;
  uint64_t seed = 0;
};

// Named shapes: "qwen2-0.5b" (Qwen2-0.5B), "qwen2-1.5b" (Qwen2.5-1.5B, NVILA-Lite-2B's LLM),
// "qwen2-7b" (Qwen2-7B, NVILA-8B's LLM), "tiny".
StatusOr<RandomLlmSpec> random_llm_preset(const std::string& name);

// Weights ~ N(0, 0.02), norms 1, biases small; writes atomically into `dir` (created).
Status write_random_llm(const std::string& dir, const RandomLlmSpec& spec);

}  // namespace vila
