#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace vila {

int32_t argmax(const float* values, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (values[i] > values[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

double log_softmax_at(const float* logits, int64_t n, int32_t id) {
  double max_v = logits[0];
  for (int64_t i = 1; i < n; ++i) max_v = std::max(max_v, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_v);
  return static_cast<double>(logits[id]) - max_v - std::log(sum);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  if (params_.temperature <= 0.0f) return argmax(logits, n_vocab);

  // Candidates sorted by logit, descending; top-k first (cheap partial sort).
  candidates_.clear();
  candidates_.reserve(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) {
    candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  }
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(keep),
                      candidates_.end(), by_logit);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }

  // Softmax with temperature over the kept candidates.
  const double inv_t = 1.0 / params_.temperature;
  const double max_logit = candidates_[0].first;
  std::vector<double> probs(candidates_.size());
  double total = 0.0;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    probs[i] = std::exp((candidates_[i].first - max_logit) * inv_t);
    total += probs[i];
  }
  // Top-p: smallest prefix whose mass reaches top_p (always at least one token).
  if (params_.top_p < 1.0f) {
    double mass = 0.0;
    size_t cut = probs.size();
    for (size_t i = 0; i < probs.size(); ++i) {
      mass += probs[i] / total;
      if (mass >= params_.top_p) {
        cut = i + 1;
        break;
      }
    }
    probs.resize(cut);
    total = 0.0;
    for (double p : probs) total += p;
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  const double r = uniform(rng_);
  double acc = 0.0;
  for (size_t i = 0; i < probs.size(); ++i) {
    acc += probs[i];
    if (r < acc) return candidates_[i].second;
  }
  return candidates_[probs.size() - 1].second;
}

}  // namespace vila
