#include "ops/cpu/norm.h"

#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "ops/cpu/op_check.h"
#include "ops/cpu/vec.h"

namespace vila::cpu {

namespace {

// Rows are independent; split them over the pool once there is enough work.
constexpr int64_t kParallelMinElems = int64_t{1} << 16;

template <typename RowFn>
void for_each_row(int64_t rows, int64_t cols, const RowFn& fn) {
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) fn(r);
  };
  if (rows * cols < kParallelMinElems) {
    run(0, rows);
  } else {
    ThreadPool::global().parallel_for(rows, run);
  }
}

// The weight (and bias) converted to fp32 once per call, in a buffer that only grows.
const float* weight_f32(const TensorView& w, std::vector<float>& buffer) {
  if (w.dtype == DType::kF32) return w.as<const float>();
  if (buffer.size() < static_cast<size_t>(w.numel())) buffer.resize(static_cast<size_t>(w.numel()));
  vec_to_f32(w.dtype, w.data, buffer.data(), w.numel());
  return buffer.data();
}

}  // namespace

Status rms_norm(const TensorView& out, const TensorView& x, const TensorView& weight, float eps) {
  VILA_RETURN_IF_ERROR(check_f32("rms_norm", "x", x));
  VILA_RETURN_IF_ERROR(check_f32("rms_norm", "out", out));
  VILA_RETURN_IF_ERROR(check_same_shape("rms_norm", "out", out, "x", x));
  const int64_t c = last_dim(x);
  VILA_RETURN_IF_ERROR(check_weight("rms_norm", "weight", weight, c));
  const int64_t rows = row_count(x);

  thread_local std::vector<float> w_buffer;
  const float* w = weight_f32(weight, w_buffer);
  const float* in = x.as<const float>();
  float* dst = out.f32();
  for_each_row(rows, c, [&](int64_t r) {
    const float* xr = in + r * c;
    float* yr = dst + r * c;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < c; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const auto variance = static_cast<float>(sum_sq / static_cast<double>(c));
    const float inv_rms = 1.0f / std::sqrt(variance + eps);
    for (int64_t i = 0; i < c; ++i) yr[i] = w[i] * (xr[i] * inv_rms);
  });
  return ok_status();
}

Status layer_norm(const TensorView& out, const TensorView& x, const TensorView& weight,
                  const TensorView& bias, float eps) {
  VILA_RETURN_IF_ERROR(check_f32("layer_norm", "x", x));
  VILA_RETURN_IF_ERROR(check_f32("layer_norm", "out", out));
  VILA_RETURN_IF_ERROR(check_same_shape("layer_norm", "out", out, "x", x));
  const int64_t c = last_dim(x);
  VILA_RETURN_IF_ERROR(check_weight("layer_norm", "weight", weight, c));
  if (!bias.empty()) VILA_RETURN_IF_ERROR(check_weight("layer_norm", "bias", bias, c));
  const int64_t rows = row_count(x);

  thread_local std::vector<float> w_buffer;
  thread_local std::vector<float> b_buffer;
  const float* w = weight_f32(weight, w_buffer);
  const float* b = bias.empty() ? nullptr : weight_f32(bias, b_buffer);
  const float* in = x.as<const float>();
  float* dst = out.f32();
  for_each_row(rows, c, [&](int64_t r) {
    const float* xr = in + r * c;
    float* yr = dst + r * c;
    double sum = 0.0;
    for (int64_t i = 0; i < c; ++i) sum += xr[i];
    const double mean_d = sum / static_cast<double>(c);
    double sum_sq = 0.0;
    for (int64_t i = 0; i < c; ++i) {
      const double d = xr[i] - mean_d;
      sum_sq += d * d;
    }
    const auto mean = static_cast<float>(mean_d);
    const auto variance = static_cast<float>(sum_sq / static_cast<double>(c));
    const float inv_std = 1.0f / std::sqrt(variance + eps);
    for (int64_t i = 0; i < c; ++i) {
      const float y = (xr[i] - mean) * inv_std * w[i];
      yr[i] = b != nullptr ? y + b[i] : y;
    }
  });
  return ok_status();
}

}  // namespace vila::cpu
