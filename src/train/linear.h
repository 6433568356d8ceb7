// Linear layer (nn.Linear) for training, each of its three GEMMs in its own precision.
//
// Forward:   y (M, N) = x (M, K) · W (N, K)ᵀ + b (N)
// Backward:  dx (M, K)  = dy (M, N) · W (N, K)         input grad   (written)
//            dW (N, K) += dyᵀ (N, M) · x (M, K)        weight grad  (accumulated)
//            db (N)    += sum over rows of dy          (accumulated, fp32)
// The GEMMs run as train::gemm with precision.forward / .input_grad / .weight_grad (operand
// roles in precision.h). Saved state: none; backward reads x and W again.
// x, y, dx, dy may have any rank with the last dimension K / N (rows = the leading dims).
#pragma once

#include "core/status.h"
#include "core/tensor.h"
#include "train/precision.h"

namespace vila::train {

struct LinearParams {
  TensorView weight;  // (N, K) f32
  TensorView bias;    // (N) f32, or empty

  int64_t out_features() const { return weight.dim(0); }
  int64_t in_features() const { return weight.dim(1); }
};

// The parameter gradients, accumulated (+=); either may be empty (frozen / no bias).
struct LinearGrads {
  TensorView weight;  // (N, K) f32
  TensorView bias;    // (N) f32
};

// y (M, N) = x Wᵀ + b; y must not alias x.
Status linear_forward(const TensorView& y, const TensorView& x, const LinearParams& p,
                      const GemmPrecision& precision);

// dx (M, K) may be empty (input needs no gradient, e.g. the first layer of a frozen tower); it
// must not alias dy or x.
Status linear_backward(const TensorView& dx, const LinearGrads& grads, const TensorView& dy,
                       const TensorView& x, const LinearParams& p,
                       const LinearPrecision& precision);

}  // namespace vila::train
