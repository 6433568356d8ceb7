// Autoregressive generation and continuation scoring over a LanguageModel with a KV cache.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/llm.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace vila {

struct GenerateOptions {
  int64_t max_new_tokens = 256;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends at the first of these (not included in text)
  int64_t context_length = 0;     // 0: the model's max_position
  // Positions processed per forward call during prefill (bounds scratch memory).
  int64_t prefill_chunk = 512;
};

struct GenerateTimings {
  double prefill_ms = 0;
  double decode_ms = 0;  // all decode steps (sampling included)
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_tokens_per_s() const;
  double decode_tokens_per_s() const;
};

struct GenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> output_ids;  // generated ids, stop token excluded
  std::string text;                 // decode(output_ids)
  std::string stop_reason;          // "stop_token", "max_new_tokens", "context_full"
  GenerateTimings timings;
};

// Receives text as it becomes valid UTF-8 (never a partial code point).
using TextCallback = std::function<void(const std::string& piece)>;

// A prompt: token ids, and optionally its input embeddings (n_positions, hidden) when media rows
// were spliced in (then `ids` are informational and may hold media ids beyond the vocabulary).
struct PromptInput {
  std::vector<int32_t> ids;
  std::vector<float> embeds;  // empty: embed `ids`

  bool has_embeds() const { return !embeds.empty(); }
};

class Decoder;  // runtime/decoder.h

// OutOfRange when the prompt alone does not fit the context. The Decoder form runs on any backend
// (CpuDecoder, CudaDecoder); the LanguageModel form is the CPU one.
StatusOr<GenerateResult> generate(Decoder& llm, const Tokenizer& tokenizer,
                                  const PromptInput& prompt, const GenerateOptions& options,
                                  const TextCallback& on_text = nullptr);
StatusOr<GenerateResult> generate(LanguageModel& llm, const Tokenizer& tokenizer,
                                  const PromptInput& prompt, const GenerateOptions& options,
                                  const TextCallback& on_text = nullptr);
inline StatusOr<GenerateResult> generate(LanguageModel& llm, const Tokenizer& tokenizer,
                                         const std::vector<int32_t>& prompt_ids,
                                         const GenerateOptions& options,
                                         const TextCallback& on_text = nullptr) {
  return generate(llm, tokenizer, PromptInput{prompt_ids, {}}, options, on_text);
}

struct ScoreResult {
  double logprob = 0;  // sum of token_logprobs
  std::vector<int32_t> token_ids;
  std::vector<std::string> tokens;  // token_bytes of each continuation token
  std::vector<double> token_logprobs;
};

// Log-likelihood of `continuation_ids` following `prompt_ids` (teacher forcing), over the model's
// vocab_size logits.
StatusOr<ScoreResult> score_continuation(Decoder& llm, const Tokenizer& tokenizer,
                                         const PromptInput& prompt,
                                         const std::vector<int32_t>& continuation_ids,
                                         int64_t context_length = 0);
StatusOr<ScoreResult> score_continuation(LanguageModel& llm, const Tokenizer& tokenizer,
                                         const PromptInput& prompt,
                                         const std::vector<int32_t>& continuation_ids,
                                         int64_t context_length = 0);

// Length of the longest prefix of `s` that is complete UTF-8 (an invalid byte counts as complete,
// so the stream never stalls on bad bytes).
size_t utf8_complete_prefix(const std::string& s);

}  // namespace vila
