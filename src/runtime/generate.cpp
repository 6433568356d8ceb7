#include "runtime/generate.h"

#include <algorithm>
#include <chrono>

#include "runtime/decoder.h"
#include "runtime/kv_cache.h"

namespace vila {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Status check_ids(const Decoder& llm, const std::vector<int32_t>& ids, const char* what) {
  const int64_t vocab = llm.config().vocab_size;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      return invalid_argument(std::string(what) + " token " + std::to_string(i) + " has id " +
                              std::to_string(ids[i]) + ", outside the model's vocabulary [0, " +
                              std::to_string(vocab) +
                              ") (media tokens such as <image> need the vision path)");
    }
  }
  return ok_status();
}

int64_t effective_context(const Decoder& llm, int64_t requested) {
  const int64_t max_pos = llm.config().max_position;
  return requested > 0 ? std::min(requested, max_pos) : max_pos;
}

// Positions of a prompt, validating ids (text prompts) or the embedding size (media prompts).
StatusOr<int64_t> prompt_positions(const Decoder& llm, const PromptInput& prompt) {
  const int64_t hidden = llm.config().hidden;
  if (!prompt.has_embeds()) {
    VILA_RETURN_IF_ERROR(check_ids(llm, prompt.ids, "prompt"));
    return static_cast<int64_t>(prompt.ids.size());
  }
  if (static_cast<int64_t>(prompt.embeds.size()) % hidden != 0) {
    return internal_error("prompt embeddings are not a whole number of rows of " +
                          std::to_string(hidden));
  }
  return static_cast<int64_t>(prompt.embeds.size()) / hidden;
}

// Rows [begin, begin + count) of the prompt's input embeddings into `out`.
Status prompt_rows(const Decoder& llm, const PromptInput& prompt, int64_t begin, int64_t count,
                   std::vector<float>& out) {
  const int64_t hidden = llm.config().hidden;
  out.resize(static_cast<size_t>(count * hidden));
  if (!prompt.has_embeds()) return llm.embed(prompt.ids.data() + begin, count, out.data());
  std::copy_n(prompt.embeds.begin() + begin * hidden, count * hidden, out.begin());
  return ok_status();
}

// Feeds the prompt through the model in chunks; writes the logits of the last position to `last`.
Status prefill(Decoder& llm, const PromptInput& prompt, int64_t n, int64_t chunk,
               std::vector<float>& last) {
  std::vector<float> embeds;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t count = std::min(chunk, n - begin);
    VILA_RETURN_IF_ERROR(prompt_rows(llm, prompt, begin, count, embeds));
    const bool is_last = begin + count == n;
    VILA_RETURN_IF_ERROR(
        llm.forward(embeds.data(), count, is_last ? last.data() : nullptr, is_last ? 1 : 0));
  }
  return ok_status();
}
}  // namespace

double GenerateTimings::prefill_tokens_per_s() const {
  return prefill_ms > 0 ? 1000.0 * static_cast<double>(prompt_tokens) / prefill_ms : 0.0;
}
double GenerateTimings::decode_tokens_per_s() const {
  return decode_ms > 0 ? 1000.0 * static_cast<double>(generated_tokens) / decode_ms : 0.0;
}

size_t utf8_complete_prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to find the start of the last code point.
  const size_t n = s.size();
  size_t i = n;
  int back = 0;
  while (i > 0 && back < 4) {
    const auto c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) break;  // not a continuation byte
    --i;
    ++back;
  }
  if (i == 0) return back > 0 && back < 4 ? 0 : n;
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  int need = 0;
  if (lead >= 0xF0 && lead < 0xF8) {
    need = 3;
  } else if (lead >= 0xE0) {
    need = 2;
  } else if (lead >= 0xC0) {
    need = 1;
  } else {
    return n;  // ASCII (or a stray continuation run): complete
  }
  if (lead >= 0xF8) return n;  // invalid lead byte: do not hold back
  return back >= need ? n : i - 1;
}

StatusOr<GenerateResult> generate(LanguageModel& llm, const Tokenizer& tokenizer,
                                  const PromptInput& prompt, const GenerateOptions& options,
                                  const TextCallback& on_text) {
  CpuDecoder decoder(llm);
  return generate(decoder, tokenizer, prompt, options, on_text);
}

StatusOr<GenerateResult> generate(Decoder& llm, const Tokenizer& tokenizer,
                                  const PromptInput& prompt, const GenerateOptions& options,
                                  const TextCallback& on_text) {
  VILA_ASSIGN_OR_RETURN(const int64_t n_prompt, prompt_positions(llm, prompt));
  if (n_prompt == 0) return invalid_argument("the prompt is empty (no tokens)");
  const int64_t context = effective_context(llm, options.context_length);
  if (n_prompt >= context) {
    return out_of_range("the prompt has " + std::to_string(n_prompt) +
                        " tokens but the context holds " + std::to_string(context) +
                        " (max_position_embeddings or --ctx-size); shorten the prompt");
  }
  const int64_t vocab = llm.config().vocab_size;
  GenerateResult result;
  result.prompt_ids = prompt.ids;
  result.timings.prompt_tokens = n_prompt;

  VILA_RETURN_IF_ERROR(llm.begin(std::min(context, n_prompt + options.max_new_tokens)));
  std::vector<float> logits(static_cast<size_t>(vocab));
  auto t0 = Clock::now();
  VILA_RETURN_IF_ERROR(
      prefill(llm, prompt, n_prompt, std::max<int64_t>(1, options.prefill_chunk), logits));
  result.timings.prefill_ms = ms_since(t0);

  Sampler sampler(options.sampling);
  // The first token comes from the prefill's logits (host); each later one from Decoder::step.
  int32_t id = sampler.sample(logits.data(), vocab);
  size_t emitted = 0;  // bytes of result.text already passed to on_text
  result.stop_reason = "max_new_tokens";
  t0 = Clock::now();
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
      result.stop_reason = "stop_token";
      break;
    }
    result.output_ids.push_back(id);
    if (on_text) {
      const std::string text = tokenizer.decode(result.output_ids);
      const size_t complete = utf8_complete_prefix(text);
      if (complete > emitted) {
        on_text(text.substr(emitted, complete - emitted));
        emitted = complete;
      }
    }
    if (step + 1 == options.max_new_tokens) break;
    if (llm.length() + 1 > llm.capacity()) {
      result.stop_reason = "context_full";
      break;
    }
    VILA_ASSIGN_OR_RETURN(id, llm.step(id, sampler, static_cast<uint64_t>(step + 1)));
  }
  result.timings.decode_ms = ms_since(t0);
  result.timings.generated_tokens = static_cast<int64_t>(result.output_ids.size());
  result.text = tokenizer.decode(result.output_ids);
  if (on_text && result.text.size() > emitted) on_text(result.text.substr(emitted));
  return result;
}

StatusOr<ScoreResult> score_continuation(LanguageModel& llm, const Tokenizer& tokenizer,
                                         const PromptInput& prompt,
                                         const std::vector<int32_t>& continuation_ids,
                                         int64_t context_length) {
  CpuDecoder decoder(llm);
  return score_continuation(decoder, tokenizer, prompt, continuation_ids, context_length);
}

StatusOr<ScoreResult> score_continuation(Decoder& llm, const Tokenizer& tokenizer,
                                         const PromptInput& prompt,
                                         const std::vector<int32_t>& continuation_ids,
                                         int64_t context_length) {
  VILA_ASSIGN_OR_RETURN(const int64_t n_prompt, prompt_positions(llm, prompt));
  if (n_prompt == 0) return invalid_argument("the prompt is empty (no tokens)");
  if (continuation_ids.empty()) return invalid_argument("the continuation is empty (no tokens)");
  VILA_RETURN_IF_ERROR(check_ids(llm, continuation_ids, "continuation"));
  const int64_t context = effective_context(llm, context_length);
  const int64_t n = n_prompt + static_cast<int64_t>(continuation_ids.size());
  if (n > context) {
    return out_of_range("prompt + continuation have " + std::to_string(n) +
                        " tokens but the context holds " + std::to_string(context));
  }
  const int64_t vocab = llm.config().vocab_size;
  const int64_t hidden = llm.config().hidden;
  const auto n_cont = static_cast<int64_t>(continuation_ids.size());
  VILA_RETURN_IF_ERROR(llm.begin(n));
  std::vector<float> embeds;
  VILA_RETURN_IF_ERROR(prompt_rows(llm, prompt, 0, n_prompt, embeds));
  embeds.resize(static_cast<size_t>(n * hidden));
  VILA_RETURN_IF_ERROR(
      llm.embed(continuation_ids.data(), n - n_prompt, embeds.data() + n_prompt * hidden));
  // Logits of the positions that predict each continuation token: n_cont positions ending at n-2.
  // Run everything but the last token, asking for the last n_cont logits.
  std::vector<float> logits(static_cast<size_t>(n_cont * vocab));
  VILA_RETURN_IF_ERROR(llm.forward(embeds.data(), n - 1, logits.data(), n_cont));
  ScoreResult result;
  for (int64_t i = 0; i < n_cont; ++i) {
    const int32_t id = continuation_ids[static_cast<size_t>(i)];
    const double lp = log_softmax_at(logits.data() + i * vocab, vocab, id);
    result.token_ids.push_back(id);
    result.tokens.push_back(tokenizer.token_bytes(id));
    result.token_logprobs.push_back(lp);
    result.logprob += lp;
  }
  return result;
}

}  // namespace vila
