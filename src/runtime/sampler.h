// Token sampling: greedy, or temperature + top-k + top-p with a seeded RNG (reproducible).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace vila {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // logits (n_vocab). Returns the chosen id in [0, n_vocab).
  int32_t sample(const float* logits, int64_t n_vocab);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;  // reused across calls
};

// Index of the largest value; ties go to the lowest index (as torch.argmax).
int32_t argmax(const float* values, int64_t n);
// log_softmax(logits)[id], computed stably in double.
double log_softmax_at(const float* logits, int64_t n, int32_t id);

}  // namespace vila
