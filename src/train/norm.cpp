// RMSNorm / LayerNorm forward (inference op + saved statistics) and backward (see norm.h).
#include "train/norm.h"

#include <cmath>
#include <string>

#include "ops/cpu/norm.h"
#include "train/check.h"

namespace vila::train {

namespace {

// Shared backward of both norms over rows of C values; `mean` is null for RMSNorm (x̂ = x r and
// no centering of g).
void norm_backward_rows(const TensorView& dx, const NormGrads& grads, const TensorView& dy,
                        const TensorView& x, const TensorView& weight, const float* mean,
                        const float* rstd) {
  const int64_t c = cpu::last_dim(x), rows = cpu::row_count(x);
  const float* xs = x.as<const float>();
  const float* gs = dy.as<const float>();
  const float* w = weight.as<const float>();
  float* dw = grads.weight.empty() ? nullptr : grads.weight.f32();
  float* db = grads.bias.empty() ? nullptr : grads.bias.f32();
  float* dxs = dx.empty() ? nullptr : dx.f32();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xs + r * c;
    const float* dyr = gs + r * c;
    const float mu = mean != nullptr ? mean[r] : 0.0f;
    const float rs = rstd[r];
    double sum_g = 0.0, sum_g_xhat = 0.0;  // sum_i g_i, sum_i g_i x̂_i
    for (int64_t i = 0; i < c; ++i) {
      const float xhat = (xr[i] - mu) * rs;
      const float g = dyr[i] * w[i];
      sum_g += g;
      sum_g_xhat += static_cast<double>(g) * xhat;
      if (dw != nullptr) dw[i] += dyr[i] * xhat;
      if (db != nullptr) db[i] += dyr[i];
    }
    if (dxs == nullptr) continue;
    const auto mean_g = mean != nullptr ? static_cast<float>(sum_g / static_cast<double>(c)) : 0.0f;
    const auto mean_g_xhat = static_cast<float>(sum_g_xhat / static_cast<double>(c));
    float* dxr = dxs + r * c;  // may alias dyr: element i is read before it is written
    for (int64_t i = 0; i < c; ++i) {
      const float xhat = (xr[i] - mu) * rs;
      const float g = dyr[i] * w[i];
      dxr[i] = rs * (g - mean_g - xhat * mean_g_xhat);
    }
  }
}

Status check_backward(const char* op, const TensorView& dx, const NormGrads& grads,
                      const TensorView& dy, const TensorView& x, const TensorView& weight,
                      size_t saved_rows) {
  const int64_t c = cpu::last_dim(x), rows = cpu::row_count(x);
  VILA_RETURN_IF_ERROR(check_matrix(op, "x", x, rows, c));
  VILA_RETURN_IF_ERROR(check_matrix(op, "dy", dy, rows, c));
  VILA_RETURN_IF_ERROR(check_optional_matrix(op, "dx", dx, rows, c));
  VILA_RETURN_IF_ERROR(check_vector(op, "weight", weight, c));
  if (!grads.weight.empty()) VILA_RETURN_IF_ERROR(check_vector(op, "grad weight", grads.weight, c));
  if (!grads.bias.empty()) VILA_RETURN_IF_ERROR(check_vector(op, "grad bias", grads.bias, c));
  if (saved_rows != static_cast<size_t>(rows)) {
    return invalid_argument(std::string(op) + ": saved statistics have " +
                            std::to_string(saved_rows) + " rows, x has " + std::to_string(rows));
  }
  return ok_status();
}

}  // namespace

Status rms_norm_forward(const TensorView& y, const TensorView& x, const TensorView& weight,
                        float eps, RmsNormSaved* saved) {
  constexpr const char* kOp = "rms_norm";
  const int64_t c = cpu::last_dim(x), rows = cpu::row_count(x);
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "x", x, rows, c));
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "y", y, rows, c));
  VILA_RETURN_IF_ERROR(check_vector(kOp, "weight", weight, c));
  if (saved == nullptr) return invalid_argument("rms_norm: saved is null");
  if (y.data == x.data && rows * c > 0) return invalid_argument("rms_norm: y aliases x");
  VILA_RETURN_IF_ERROR(cpu::rms_norm(y, x, weight, eps));
  saved->rstd.resize(static_cast<size_t>(rows));
  const float* xs = x.as<const float>();
  for (int64_t r = 0; r < rows; ++r) {  // the same arithmetic as cpu::rms_norm
    const float* xr = xs + r * c;
    double sum_sq = 0.0;
    for (int64_t i = 0; i < c; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
    const auto variance = static_cast<float>(sum_sq / static_cast<double>(c));
    saved->rstd[static_cast<size_t>(r)] = 1.0f / std::sqrt(variance + eps);
  }
  return ok_status();
}

Status rms_norm_backward(const TensorView& dx, const NormGrads& grads, const TensorView& dy,
                         const TensorView& x, const TensorView& weight, const RmsNormSaved& saved) {
  VILA_RETURN_IF_ERROR(check_backward("rms_norm", dx, grads, dy, x, weight, saved.rstd.size()));
  if (!grads.bias.empty()) return invalid_argument("rms_norm: has no bias gradient");
  norm_backward_rows(dx, grads, dy, x, weight, nullptr, saved.rstd.data());
  return ok_status();
}

Status layer_norm_forward(const TensorView& y, const TensorView& x, const TensorView& weight,
                          const TensorView& bias, float eps, LayerNormSaved* saved) {
  constexpr const char* kOp = "layer_norm";
  const int64_t c = cpu::last_dim(x), rows = cpu::row_count(x);
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "x", x, rows, c));
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "y", y, rows, c));
  VILA_RETURN_IF_ERROR(check_vector(kOp, "weight", weight, c));
  if (!bias.empty()) VILA_RETURN_IF_ERROR(check_vector(kOp, "bias", bias, c));
  if (saved == nullptr) return invalid_argument("layer_norm: saved is null");
  if (y.data == x.data && rows * c > 0) return invalid_argument("layer_norm: y aliases x");
  VILA_RETURN_IF_ERROR(cpu::layer_norm(y, x, weight, bias, eps));
  saved->mean.resize(static_cast<size_t>(rows));
  saved->rstd.resize(static_cast<size_t>(rows));
  const float* xs = x.as<const float>();
  for (int64_t r = 0; r < rows; ++r) {  // the same arithmetic as cpu::layer_norm
    const float* xr = xs + r * c;
    double sum = 0.0;
    for (int64_t i = 0; i < c; ++i) sum += xr[i];
    const double mean_d = sum / static_cast<double>(c);
    double sum_sq = 0.0;
    for (int64_t i = 0; i < c; ++i) {
      const double d = xr[i] - mean_d;
      sum_sq += d * d;
    }
    const auto variance = static_cast<float>(sum_sq / static_cast<double>(c));
    saved->mean[static_cast<size_t>(r)] = static_cast<float>(mean_d);
    saved->rstd[static_cast<size_t>(r)] = 1.0f / std::sqrt(variance + eps);
  }
  return ok_status();
}

Status layer_norm_backward(const TensorView& dx, const NormGrads& grads, const TensorView& dy,
                           const TensorView& x, const TensorView& weight,
                           const LayerNormSaved& saved) {
  VILA_RETURN_IF_ERROR(check_backward("layer_norm", dx, grads, dy, x, weight, saved.rstd.size()));
  if (saved.mean.size() != saved.rstd.size()) {
    return invalid_argument("layer_norm: saved mean and rstd differ in length");
  }
  norm_backward_rows(dx, grads, dy, x, weight, saved.mean.data(), saved.rstd.data());
  return ok_status();
}

}  // namespace vila::train
