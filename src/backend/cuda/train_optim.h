// The loss and optimizer kernels of the CUDA training step (CudaLlmTrainer):
//   cross entropy   per row t of logits z (R, V) fp32 or bf16, label y_t (kIgnore: not counted):
//                   loss_t = logsumexp(z_t) - z_t[y_t];  dz_t = scale (softmax(z_t) - onehot(y_t))
//                   written bf16 (the lm_head backward GEMM operand); ignored rows: 0 and 0.
//   grad sum sq     *out (double) += Σ g² over n fp32 values (the global grad norm, no host sync;
//                   per-block partials summed in a fixed order: reproducible)
//   AdamW           PyTorch's single-tensor AdamW in its operation order (train/optimizer.h),
//                   clipping folded in: g *= float(max_norm / (sqrt(*sumsq) + 1e-6)) when that
//                   is < 1 (max_norm > 0); decay on the first n_decay values only (the weights);
//                   writes the fp32 master p, m, v and the bf16 copy of p for the GEMMs.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

constexpr int32_t kTrainIgnoreIndex = -100;

// dlogits (R, V) bf16, row_loss (R) fp32 <- logits (R, V) f32 or bf16, labels (R) int32. bf16
// logits may be dlogits itself (the gradient overwrites them in place).
Status train_cross_entropy(void* dlogits, float* row_loss, const void* logits, DType logits_dtype,
                           const int32_t* labels, int64_t rows, int64_t vocab, float scale,
                           void* stream);

// *sumsq (device double) += Σ g[i]², i < n. The caller zeroes *sumsq first.
Status train_grad_sumsq(double* sumsq, const float* g, int64_t n, void* stream);

struct AdamWStep {
  double lr = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;               // t after the increment
  double max_norm = 0.0;          // 0: no clipping
  const double* sumsq = nullptr;  // device Σ g² (needed when max_norm > 0)
};
// p, g, m, v (n) fp32, 16-byte aligned; p16 (n) bf16, 8-byte aligned. Values [0, n_decay) decay,
// [n_decay, n) do not.
Status train_adamw(float* p, void* p16, const float* g, float* m, float* v, int64_t n,
                   int64_t n_decay, const AdamWStep& step, void* stream);

}  // namespace vila::cuda
