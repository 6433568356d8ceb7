// GELU and SiLU-gate forward (inference ops) and backward (see activation.h for the math).
#include "train/activation.h"

#include <cmath>
#include <string>

#include "train/check.h"

namespace vila::train {

namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;    // 1 / √2
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / √(2π)
constexpr double kGeluBeta = 0.79788456080286535588;    // √(2/π)
constexpr float kGeluKappa = 0.044715f;

Status check_same(const char* op, const char* a_name, const TensorView& a, const char* b_name,
                  const TensorView& b) {
  VILA_RETURN_IF_ERROR(check_matrix(op, a_name, a, cpu::row_count(a), cpu::last_dim(a)));
  return check_matrix(op, b_name, b, cpu::row_count(a), cpu::last_dim(a));
}

}  // namespace

Status gelu_forward(const TensorView& y, const TensorView& x, GeluApprox approx) {
  VILA_RETURN_IF_ERROR(check_same("gelu", "x", x, "y", y));
  if (y.data == x.data && x.numel() > 0) return invalid_argument("gelu: y aliases x");
  return cpu::gelu(y, x, approx);
}

Status gelu_backward(const TensorView& dx, const TensorView& dy, const TensorView& x,
                     GeluApprox approx) {
  VILA_RETURN_IF_ERROR(check_same("gelu backward", "x", x, "dy", dy));
  VILA_RETURN_IF_ERROR(check_same("gelu backward", "x", x, "dx", dx));
  const float* xs = x.as<const float>();
  const float* g = dy.as<const float>();
  float* out = dx.f32();
  const int64_t n = x.numel();
  if (approx == GeluApprox::kErf) {
    const auto sqrt_half = static_cast<float>(kSqrtHalf);
    const auto inv_sqrt_2pi = static_cast<float>(kInvSqrt2Pi);
    for (int64_t i = 0; i < n; ++i) {
      const float v = xs[i];
      const float cdf = 0.5f * (1.0f + std::erf(v * sqrt_half));
      const float pdf = inv_sqrt_2pi * std::exp(-0.5f * v * v);
      out[i] = g[i] * (cdf + v * pdf);
    }
  } else {
    const auto beta = static_cast<float>(kGeluBeta);
    for (int64_t i = 0; i < n; ++i) {
      const float v = xs[i];
      const float th = std::tanh(beta * (v + kGeluKappa * (v * v * v)));
      const float du = beta * (1.0f + 3.0f * kGeluKappa * v * v);
      out[i] = g[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du);
    }
  }
  return ok_status();
}

Status silu_gate_forward(const TensorView& y, const TensorView& gate, const TensorView& up) {
  VILA_RETURN_IF_ERROR(check_same("silu_gate", "gate", gate, "up", up));
  VILA_RETURN_IF_ERROR(check_same("silu_gate", "gate", gate, "y", y));
  if ((y.data == gate.data || y.data == up.data) && y.numel() > 0) {
    return invalid_argument("silu_gate: y aliases gate or up");
  }
  return cpu::silu_mul(y, gate, up);
}

Status silu_gate_backward(const TensorView& dgate, const TensorView& dup, const TensorView& dy,
                          const TensorView& gate, const TensorView& up) {
  constexpr const char* kOp = "silu_gate backward";
  VILA_RETURN_IF_ERROR(check_same(kOp, "gate", gate, "up", up));
  VILA_RETURN_IF_ERROR(check_same(kOp, "gate", gate, "dy", dy));
  VILA_RETURN_IF_ERROR(check_same(kOp, "gate", gate, "dgate", dgate));
  VILA_RETURN_IF_ERROR(check_same(kOp, "gate", gate, "dup", dup));
  if (dgate.data == dup.data && dgate.numel() > 0) {
    return invalid_argument("silu_gate backward: dgate aliases dup");
  }
  const float* gs = gate.as<const float>();
  const float* us = up.as<const float>();
  const float* g = dy.as<const float>();
  float* dg = dgate.f32();
  float* du = dup.f32();
  for (int64_t i = 0; i < gate.numel(); ++i) {
    const float x = gs[i];
    const float sig = 1.0f / (1.0f + std::exp(-x));
    const float grad = g[i];  // read before either output (one may alias dy)
    dg[i] = grad * us[i] * sig * (1.0f + x * (1.0f - sig));
    du[i] = grad * x * sig;
  }
  return ok_status();
}

}  // namespace vila::train
