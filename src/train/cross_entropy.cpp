// Cross-entropy with ignore mask: loss and dlogits in one pass (see cross_entropy.h).
#include "train/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "train/check.h"

namespace vila::train {

StatusOr<CrossEntropyResult> cross_entropy(const TensorView& dlogits, const TensorView& logits,
                                           const int32_t* labels,
                                           const CrossEntropyOptions& options) {
  constexpr const char* kOp = "cross_entropy";
  const int64_t t_count = cpu::row_count(logits), vocab = cpu::last_dim(logits);
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "logits", logits, t_count, vocab));
  VILA_RETURN_IF_ERROR(check_optional_matrix(kOp, "dlogits", dlogits, t_count, vocab));
  if (vocab <= 0) return invalid_argument("cross_entropy: empty vocabulary");
  if (t_count > 0 && labels == nullptr) return invalid_argument("cross_entropy: labels is null");
  if (options.normalizer < 0) {
    return invalid_argument("cross_entropy: negative normalizer " +
                            std::to_string(options.normalizer));
  }
  CrossEntropyResult result;
  for (int64_t t = 0; t < t_count; ++t) {
    if (labels[t] == kIgnoreIndex) continue;
    if (labels[t] < 0 || labels[t] >= vocab) {
      return invalid_argument("cross_entropy: label " + std::to_string(labels[t]) +
                              " at position " + std::to_string(t) + " outside [0, " +
                              std::to_string(vocab) + ") and not the ignore index -100");
    }
    ++result.counted;
  }
  const int64_t n = options.normalizer > 0 ? options.normalizer : result.counted;
  if (n == 0) {
    return invalid_argument("cross_entropy: all " + std::to_string(t_count) +
                            " labels are ignored (-100): no token to average the loss over");
  }
  const double inv_n = 1.0 / static_cast<double>(n);
  const auto grad_coef = static_cast<float>(options.grad_scale * inv_n);
  double loss_sum = 0.0;
  for (int64_t t = 0; t < t_count; ++t) {
    const float* z = logits.as<const float>() + t * vocab;
    float* dz = dlogits.empty() ? nullptr : dlogits.f32() + t * vocab;  // may alias z
    if (labels[t] == kIgnoreIndex) {
      if (dz != nullptr) std::fill(dz, dz + vocab, 0.0f);
      continue;
    }
    const float z_max = *std::max_element(z, z + vocab);
    double sum_exp = 0.0;
    for (int64_t j = 0; j < vocab; ++j) sum_exp += std::exp(static_cast<double>(z[j] - z_max));
    const double log_sum = std::log(sum_exp);
    loss_sum += log_sum - static_cast<double>(z[labels[t]] - z_max);
    if (dz == nullptr) continue;
    const auto inv_sum = static_cast<float>(1.0 / sum_exp);
    for (int64_t j = 0; j < vocab; ++j) dz[j] = std::exp(z[j] - z_max) * inv_sum * grad_coef;
    dz[labels[t]] -= grad_coef;
  }
  result.loss = loss_sum * inv_n;
  return result;
}

}  // namespace vila::train
