// Linear forward / backward as three train::gemm calls (see linear.h for the math).
#include "train/linear.h"

#include "train/check.h"
#include "train/gemm.h"

namespace vila::train {

namespace {

constexpr const char* kOp = "linear";

Status check_params(const LinearParams& p) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(kOp, "weight", p.weight));
  if (p.weight.shape.rank != 2 || p.weight.empty()) {
    return invalid_argument("linear: weight must be (N, K), got " + p.weight.shape.to_string());
  }
  if (!p.bias.empty()) VILA_RETURN_IF_ERROR(check_vector(kOp, "bias", p.bias, p.out_features()));
  return ok_status();
}

// The (rows, cols) matrix view of an activation of any rank.
TensorView as_matrix(const TensorView& t) {
  return TensorView(t.data, t.dtype, {cpu::row_count(t), cpu::last_dim(t)});
}

}  // namespace

Status linear_forward(const TensorView& y, const TensorView& x, const LinearParams& p,
                      const GemmPrecision& precision) {
  VILA_RETURN_IF_ERROR(check_params(p));
  const int64_t n = p.out_features(), k = p.in_features();
  const int64_t m = cpu::row_count(x);
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "x", x, m, k));
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "y", y, m, n));
  return gemm(as_matrix(y), as_matrix(x), p.weight, precision, {}, p.bias)
      .with_context("linear forward");
}

Status linear_backward(const TensorView& dx, const LinearGrads& grads, const TensorView& dy,
                       const TensorView& x, const LinearParams& p,
                       const LinearPrecision& precision) {
  VILA_RETURN_IF_ERROR(check_params(p));
  const int64_t n = p.out_features(), k = p.in_features();
  const int64_t m = cpu::row_count(x);
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "x", x, m, k));
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "dy", dy, m, n));
  VILA_RETURN_IF_ERROR(check_optional_matrix(kOp, "dx", dx, m, k));
  VILA_RETURN_IF_ERROR(check_optional_matrix(kOp, "grad weight", grads.weight, n, k));
  if (!grads.bias.empty()) VILA_RETURN_IF_ERROR(check_vector(kOp, "grad bias", grads.bias, n));

  const TensorView dy2 = as_matrix(dy);  // (M, N)
  if (!dx.empty()) {
    // dx (M, K) = dy (M, N) · [Wᵀ (K, N)]ᵀ: B is W stored as (N, K) = transposed (K, N).
    GemmOptions opts;
    opts.b_layout = Layout::kTransposed;
    VILA_RETURN_IF_ERROR(gemm(as_matrix(dx), dy2, p.weight, precision.input_grad, opts)
                             .with_context("linear input grad"));
  }
  if (!grads.weight.empty()) {
    // dW (N, K) += [dyᵀ (N, M)] · [xᵀ (K, M)]ᵀ: both operands read transposed.
    GemmOptions opts;
    opts.a_layout = Layout::kTransposed;
    opts.b_layout = Layout::kTransposed;
    opts.accumulate = true;
    VILA_RETURN_IF_ERROR(gemm(grads.weight, dy2, as_matrix(x), precision.weight_grad, opts)
                             .with_context("linear weight grad"));
  }
  if (!grads.bias.empty()) {
    float* db = grads.bias.f32();
    const float* g = dy.as<const float>();
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < n; ++c) db[c] += g[r * n + c];
    }
  }
  return ok_status();
}

}  // namespace vila::train
