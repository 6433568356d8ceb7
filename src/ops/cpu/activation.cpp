#include "ops/cpu/activation.h"

#include <cmath>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"

namespace vila::cpu {

namespace {

constexpr int64_t kParallelMinElems = int64_t{1} << 16;

// fn(begin, end) over [0, n) element ranges, on the pool when n is large.
template <typename RangeFn>
void for_each_range(int64_t n, const RangeFn& fn) {
  if (n < kParallelMinElems) {
    fn(int64_t{0}, n);
  } else {
    ThreadPool::global().parallel_for(n, fn);
  }
}

}  // namespace

Status silu_mul(const TensorView& out, const TensorView& gate, const TensorView& up) {
  VILA_RETURN_IF_ERROR(check_f32("silu_mul", "gate", gate));
  VILA_RETURN_IF_ERROR(check_f32("silu_mul", "up", up));
  VILA_RETURN_IF_ERROR(check_f32("silu_mul", "out", out));
  VILA_RETURN_IF_ERROR(check_same_shape("silu_mul", "gate", gate, "up", up));
  VILA_RETURN_IF_ERROR(check_same_shape("silu_mul", "out", out, "gate", gate));
  const float* g = gate.as<const float>();
  const float* u = up.as<const float>();
  float* y = out.f32();
  for_each_range(gate.numel(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float silu = g[i] / (1.0f + std::exp(-g[i]));
      y[i] = silu * u[i];
    }
  });
  return ok_status();
}

Status gelu(const TensorView& out, const TensorView& x, GeluApprox approx) {
  VILA_RETURN_IF_ERROR(check_f32("gelu", "x", x));
  VILA_RETURN_IF_ERROR(check_f32("gelu", "out", out));
  VILA_RETURN_IF_ERROR(check_same_shape("gelu", "out", out, "x", x));
  const float* in = x.as<const float>();
  float* y = out.f32();
  if (approx == GeluApprox::kErf) {
    constexpr auto kSqrtHalf = static_cast<float>(0.70710678118654752440);
    for_each_range(x.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        y[i] = 0.5f * in[i] * (1.0f + std::erf(in[i] * kSqrtHalf));
      }
    });
  } else {
    constexpr auto kBeta = static_cast<float>(0.79788456080286535588);  // sqrt(2/pi)
    constexpr float kKappa = 0.044715f;
    for_each_range(x.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const float v = in[i];
        const float inner = kBeta * (v + kKappa * (v * v * v));
        y[i] = 0.5f * v * (1.0f + std::tanh(inner));
      }
    });
  }
  return ok_status();
}

}  // namespace vila::cpu
