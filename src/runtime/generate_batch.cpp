#include "runtime/generate_batch.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "model/llm_engine.h"

namespace vila {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Releases the engine's slots however generate_batch returns.
struct SlotGuard {
  LlmEngine& engine;
  std::vector<int> slots;
  ~SlotGuard() {
    for (int s : slots) engine.release(s);
  }
};
}  // namespace

StatusOr<std::vector<GenerateResult>> generate_batch(LlmEngine& engine, const LanguageModel& cpu,
                                                     const Tokenizer& tokenizer,
                                                     const std::vector<PromptInput>& prompts,
                                                     const GenerateOptions& options) {
  const LlmConfig& c = engine.config();
  const auto n = static_cast<int>(prompts.size());
  if (n == 0) return invalid_argument("generate_batch: no prompts");
  if (n > engine.options().max_batch) {
    return invalid_argument("generate_batch: " + std::to_string(n) + " prompts but the engine " +
                            "decodes at most " + std::to_string(engine.options().max_batch));
  }
  int64_t context = engine.options().max_seq;
  if (options.context_length > 0) context = std::min(context, options.context_length);

  std::vector<GenerateResult> results(static_cast<size_t>(n));
  SlotGuard guard{engine, {}};
  std::vector<int32_t> next(static_cast<size_t>(n));
  std::vector<float> logits(static_cast<size_t>(c.vocab_size));
  Sampler sampler(options.sampling);
  double prefill_ms = 0;
  for (int i = 0; i < n; ++i) {
    const PromptInput& p = prompts[static_cast<size_t>(i)];
    std::vector<float> embeds = p.embeds;
    if (!p.has_embeds()) {
      for (size_t t = 0; t < p.ids.size(); ++t) {
        if (p.ids[t] < 0 || p.ids[t] >= c.vocab_size) {
          return invalid_argument("prompt " + std::to_string(i) + " token " + std::to_string(t) +
                                  " has id " + std::to_string(p.ids[t]) +
                                  ", outside the vocabulary");
        }
      }
      embeds.resize(p.ids.size() * static_cast<size_t>(c.hidden));
      VILA_RETURN_IF_ERROR(
          cpu.embed(p.ids.data(), static_cast<int64_t>(p.ids.size()), embeds.data()));
    }
    const auto positions = static_cast<int64_t>(embeds.size()) / c.hidden;
    if (positions == 0) return invalid_argument("prompt " + std::to_string(i) + " is empty");
    if (positions >= context) {
      return out_of_range("prompt " + std::to_string(i) + " has " + std::to_string(positions) +
                          " tokens but the context holds " + std::to_string(context));
    }
    VILA_ASSIGN_OR_RETURN(const int slot, engine.new_sequence());
    guard.slots.push_back(slot);
    const auto t0 = Clock::now();
    VILA_RETURN_IF_ERROR(engine.prefill(slot, embeds.data(), positions, logits.data(), 1));
    prefill_ms += ms_since(t0);
    GenerateResult& r = results[static_cast<size_t>(i)];
    r.prompt_ids = p.ids;
    r.timings.prompt_tokens = positions;
    r.stop_reason = "max_new_tokens";
    next[static_cast<size_t>(i)] = sampler.sample(logits.data(), c.vocab_size);
  }

  // Decode: every unfinished prompt advances by one token per step.
  std::vector<bool> done(static_cast<size_t>(n), options.max_new_tokens == 0);
  const auto t0 = Clock::now();
  for (int64_t step = 0;; ++step) {
    std::vector<int> seqs;
    std::vector<int32_t> tokens;
    std::vector<int> owners;
    for (int i = 0; i < n; ++i) {
      const auto u = static_cast<size_t>(i);
      if (done[u]) continue;
      GenerateResult& r = results[u];
      const int32_t id = next[u];
      const auto& stops = options.stop_ids;
      if (std::find(stops.begin(), stops.end(), id) != stops.end()) {
        r.stop_reason = "stop_token";
        done[u] = true;
        continue;
      }
      r.output_ids.push_back(id);
      if (static_cast<int64_t>(r.output_ids.size()) >= options.max_new_tokens) {
        done[u] = true;
        continue;
      }
      if (engine.length(guard.slots[u]) + 1 > context) {
        r.stop_reason = "context_full";
        done[u] = true;
        continue;
      }
      seqs.push_back(guard.slots[u]);
      tokens.push_back(id);
      owners.push_back(i);
    }
    if (seqs.empty()) break;
    std::vector<int32_t> picked;
    VILA_RETURN_IF_ERROR(
        engine.decode(seqs, tokens, options.sampling, static_cast<uint64_t>(step + 1), picked));
    for (size_t j = 0; j < owners.size(); ++j) next[static_cast<size_t>(owners[j])] = picked[j];
  }
  const double decode_ms = ms_since(t0);
  for (GenerateResult& r : results) {
    r.text = tokenizer.decode(r.output_ids);
    r.timings.prefill_ms = prefill_ms;
    r.timings.decode_ms = decode_ms;
    r.timings.generated_tokens = static_cast<int64_t>(r.output_ids.size());
  }
  return results;
}

}  // namespace vila
