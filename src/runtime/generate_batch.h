// Batched generation on the GPU engine: several prompts prefilled one by one into their own
// sequence slots, then decoded together — one engine step per token for all unfinished prompts —
// until each stops (stop token, max_new_tokens or its context). Results come back in prompt order,
// each as generate() would report it (timings are shared: prefill_ms is the sum over prompts,
// decode_ms the batched loop).
#pragma once

#include <vector>

#include "core/status.h"
#include "model/llm.h"
#include "runtime/generate.h"
#include "tokenizer/tokenizer.h"

namespace vila {

class LlmEngine;

// prompts.size() <= engine.options().max_batch; the engine must have no active sequences' slots
// in use beyond what is free. `cpu` supplies the prompt embeddings (LanguageModel::embed).
StatusOr<std::vector<GenerateResult>> generate_batch(LlmEngine& engine, const LanguageModel& cpu,
                                                     const Tokenizer& tokenizer,
                                                     const std::vector<PromptInput>& prompts,
                                                     const GenerateOptions& options);

}  // namespace vila
