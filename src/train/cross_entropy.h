// Cross-entropy over the vocabulary with an ignore mask, loss and dlogits in one pass.
//
// logits z (T, V), labels y (T) with kIgnoreIndex (-100) for tokens that do not count (prompt,
// image and padding tokens: only assistant tokens are trained). With n the counted tokens (or
// the normalizer given in the options):
//   loss      = (1/n) sum over counted t of (logsumexp(z_t) - z_t[y_t])
//   dlogits_t = (grad_scale / n) (softmax(z_t) - onehot(y_t))    counted rows
//   dlogits_t = 0                                                ignored rows
// Stable: max subtracted before exp, sums of exponentials in double. A non-finite logit gives a
// non-finite loss, which the caller checks (the trainer skips or stops on it).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

constexpr int32_t kIgnoreIndex = -100;  // PyTorch's CrossEntropyLoss ignore_index

struct CrossEntropyOptions {
  // Divide by this instead of the tokens counted in this call (gradient accumulation: the count
  // of the whole batch, so that micro-batches add up to the batch mean). 0: this call's count.
  int64_t normalizer = 0;
  float grad_scale = 1.0f;  // dloss: scales dlogits (not the returned loss)
};

struct CrossEntropyResult {
  double loss = 0.0;    // mean over the counted tokens (or the normalizer)
  int64_t counted = 0;  // labels that were not kIgnoreIndex
};

// logits (T, V) f32; labels (T); dlogits (T, V) f32 written, may alias logits, or empty (loss
// only). InvalidArgument naming the position for a label outside [0, V) that is not -100, and a
// clear InvalidArgument (never NaN) when every label is ignored and no normalizer is given.
StatusOr<CrossEntropyResult> cross_entropy(const TensorView& dlogits, const TensorView& logits,
                                           const int32_t* labels,
                                           const CrossEntropyOptions& options = {});

}  // namespace vila::train
