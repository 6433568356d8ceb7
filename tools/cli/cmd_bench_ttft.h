// vila bench --device cuda --ttft (cmd_bench_ttft.cpp): time to first token from an image file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "cmd_bench_cuda.h"
#include "core/status.h"
#include "model/llm_engine.h"

namespace vila::cli {

// The LLM preset of a model shape ("nvila-8b" -> "qwen2-7b", "nvila-lite-2b" -> "qwen2-1.5b");
// InvalidArgument for an unknown shape.
StatusOr<std::string> llm_preset_of_shape(const std::string& model_shape);

// The longest prompt (positions) the TTFT benchmark of this shape can build: template, every
// visual token of the largest tile grid, the question.
int64_t ttft_max_prompt_tokens(const CudaBenchArgs& args);

// Runs the TTFT benchmark on `engine` (built for the shape's LLM): prints a table and sets
// out["ttft"]. CUDA builds only (Unimplemented otherwise).
Status bench_ttft(const CudaBenchArgs& args, LlmEngine& engine, nlohmann::json& out);

}  // namespace vila::cli
