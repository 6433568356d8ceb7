#include "ops/cpu/patch_embed.h"

#include <string>
#include <vector>

#include "ops/cpu/matmul.h"
#include "ops/cpu/op_check.h"

namespace vila::cpu {

Status patch_embed(const TensorView& out, const TensorView& pixels, const TensorView& weight,
                   const TensorView& bias) {
  VILA_RETURN_IF_ERROR(check_f32("patch_embed", "pixels", pixels));
  VILA_RETURN_IF_ERROR(check_f32("patch_embed", "out", out));
  if (pixels.shape.rank != 4 || weight.shape.rank != 4 || out.shape.rank != 3 ||
      weight.dim(2) != weight.dim(3) || weight.dim(1) != pixels.dim(1) || weight.dim(2) <= 0) {
    return invalid_argument(
        "patch_embed: need pixels (N, Cin, H, W), weight (C, Cin, p, p), out (N, P, C); got "
        "pixels " +
        pixels.shape.to_string() + ", weight " + weight.shape.to_string() + ", out " +
        out.shape.to_string());
  }
  const int64_t n = pixels.dim(0), cin = pixels.dim(1), hp = pixels.dim(2), wp = pixels.dim(3);
  const int64_t c = weight.dim(0), p = weight.dim(2);
  const int64_t gh = hp / p, gw = wp / p, n_patch = gh * gw, k = cin * p * p;
  if (out.dim(0) != n || out.dim(1) != n_patch || out.dim(2) != c) {
    return invalid_argument("patch_embed: out " + out.shape.to_string() + ", expected [" +
                            std::to_string(n) + ", " + std::to_string(n_patch) + ", " +
                            std::to_string(c) + "]");
  }
  VILA_RETURN_IF_ERROR(check_weight("patch_embed", "weight", weight, c * k));
  if (!bias.empty()) VILA_RETURN_IF_ERROR(check_weight("patch_embed", "bias", bias, c));
  // The conv weight (C, Cin, p, p) is a (C, Cin*p*p) linear weight over im2col columns
  // ordered (ci, ky, kx), the same flattening as the weight's own memory order.
  LinearWeight w;
  w.weight = TensorView(weight.data, weight.dtype, {c, k});
  w.bias = bias;

  std::vector<float> cols(static_cast<size_t>(n_patch * k));  // (P, Cin*p*p) of one image
  const float* px = pixels.as<const float>();
  for (int64_t img = 0; img < n; ++img) {
    const float* src = px + img * cin * hp * wp;
    for (int64_t py = 0; py < gh; ++py) {
      for (int64_t pxi = 0; pxi < gw; ++pxi) {
        float* col = cols.data() + (py * gw + pxi) * k;
        for (int64_t ci = 0; ci < cin; ++ci) {
          for (int64_t ky = 0; ky < p; ++ky) {
            const float* row = src + (ci * hp + py * p + ky) * wp + pxi * p;
            for (int64_t kx = 0; kx < p; ++kx) *col++ = row[kx];
          }
        }
      }
    }
    VILA_RETURN_IF_ERROR(
        linear(TensorView(out.f32() + img * n_patch * c, DType::kF32, {n_patch, c}),
               TensorView(cols.data(), DType::kF32, {n_patch, k}), w));
  }
  return ok_status();
}

}  // namespace vila::cpu
