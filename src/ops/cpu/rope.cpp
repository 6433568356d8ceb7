#include "ops/cpu/rope.h"

#include <cmath>
#include <string>

#include "ops/cpu/op_check.h"

namespace vila::cpu {

Status rope_cos_sin(const TensorView& cos, const TensorView& sin, const int64_t* positions,
                    double theta) {
  VILA_RETURN_IF_ERROR(check_f32("rope_cos_sin", "cos", cos));
  VILA_RETURN_IF_ERROR(check_f32("rope_cos_sin", "sin", sin));
  VILA_RETURN_IF_ERROR(check_same_shape("rope_cos_sin", "cos", cos, "sin", sin));
  const int64_t half = last_dim(cos);
  const int64_t t_count = row_count(cos);
  if (t_count > 0 && positions == nullptr)
    return invalid_argument("rope_cos_sin: positions is null");
  if (!(theta > 0.0)) return invalid_argument("rope_cos_sin: theta must be positive");

  const auto dim = static_cast<float>(2 * half);
  const auto base = static_cast<float>(theta);
  float* c = cos.f32();
  float* s = sin.f32();
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / dim;
    const float inv_freq = 1.0f / std::pow(base, exponent);
    for (int64_t t = 0; t < t_count; ++t) {
      const float freq = static_cast<float>(positions[t]) * inv_freq;
      // cos/sin of the fp32 angle, evaluated in double and rounded: within an ulp of torch's.
      c[t * half + i] = static_cast<float>(std::cos(static_cast<double>(freq)));
      s[t * half + i] = static_cast<float>(std::sin(static_cast<double>(freq)));
    }
  }
  return ok_status();
}

Status rope_apply(const TensorView& x, const TensorView& cos, const TensorView& sin) {
  VILA_RETURN_IF_ERROR(check_f32("rope_apply", "x", x));
  VILA_RETURN_IF_ERROR(check_f32("rope_apply", "cos", cos));
  VILA_RETURN_IF_ERROR(check_f32("rope_apply", "sin", sin));
  VILA_RETURN_IF_ERROR(check_same_shape("rope_apply", "cos", cos, "sin", sin));
  if (x.shape.rank != 3) {
    return invalid_argument("rope_apply: x must be (T, n_head, D), got " + x.shape.to_string());
  }
  const int64_t t_count = x.dim(0);
  const int64_t n_head = x.dim(1);
  const int64_t d = x.dim(2);
  const int64_t half = d / 2;
  if (d % 2 != 0 || last_dim(cos) != half || row_count(cos) != t_count) {
    return invalid_argument("rope_apply: x " + x.shape.to_string() + " needs cos/sin (" +
                            std::to_string(t_count) + ", " + std::to_string(half) + "), got " +
                            cos.shape.to_string());
  }
  float* data = x.f32();
  for (int64_t t = 0; t < t_count; ++t) {
    const float* ct = cos.as<const float>() + t * half;
    const float* st = sin.as<const float>() + t * half;
    for (int64_t h = 0; h < n_head; ++h) {
      float* v = data + (t * n_head + h) * d;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = v[i];
        const float x2 = v[i + half];
        const float a = x1 * ct[i];
        const float b = x2 * st[i];
        const float e = x2 * ct[i];
        const float f = x1 * st[i];
        v[i] = a - b;
        v[i + half] = e + f;
      }
    }
  }
  return ok_status();
}

}  // namespace vila::cpu
