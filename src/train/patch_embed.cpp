// Patch embedding forward (the inference op) and backward via im2col GEMMs (see patch_embed.h).
#include "train/patch_embed.h"

#include <algorithm>
#include <string>
#include <vector>

#include "ops/cpu/patch_embed.h"
#include "train/check.h"
#include "train/gemm.h"

namespace vila::train {

namespace {

struct Geometry {
  int64_t n = 0, cin = 0, hp = 0, wp = 0;  // pixels (N, Cin, Hp, Wp)
  int64_t c = 0, p = 0;                    // weight (C, Cin, p, p)
  int64_t gh = 0, gw = 0;                  // patch grid
  int64_t patches() const { return gh * gw; }
  int64_t k() const { return cin * p * p; }
};

StatusOr<Geometry> check_geometry(const char* op, const TensorView& pixels,
                                  const TensorView& weight) {
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "pixels", pixels));
  VILA_RETURN_IF_ERROR(cpu::check_f32(op, "weight", weight));
  if (pixels.shape.rank != 4 || weight.shape.rank != 4 || weight.dim(2) != weight.dim(3) ||
      weight.dim(1) != pixels.dim(1) || weight.dim(2) <= 0 || weight.empty()) {
    return invalid_argument(std::string(op) +
                            ": need pixels (N, Cin, H, W) and weight (C, Cin, p, p); got pixels " +
                            pixels.shape.to_string() + ", weight " + weight.shape.to_string());
  }
  Geometry g;
  g.n = pixels.dim(0), g.cin = pixels.dim(1), g.hp = pixels.dim(2), g.wp = pixels.dim(3);
  g.c = weight.dim(0), g.p = weight.dim(2);
  g.gh = g.hp / g.p, g.gw = g.wp / g.p;
  return g;
}

// cols (P, K) of image `img`, or the reverse (col2im, writing the covered pixels) when `to_cols`
// is false.
void im2col(const Geometry& g, float* image, float* cols, bool to_cols) {
  for (int64_t py = 0; py < g.gh; ++py) {
    for (int64_t px = 0; px < g.gw; ++px) {
      float* col = cols + (py * g.gw + px) * g.k();
      for (int64_t ci = 0; ci < g.cin; ++ci) {
        for (int64_t ky = 0; ky < g.p; ++ky) {
          float* row = image + (ci * g.hp + py * g.p + ky) * g.wp + px * g.p;
          for (int64_t kx = 0; kx < g.p; ++kx, ++col) {
            if (to_cols) {
              *col = row[kx];
            } else {
              row[kx] = *col;
            }
          }
        }
      }
    }
  }
}

}  // namespace

Status patch_embed_forward(const TensorView& out, const TensorView& pixels,
                           const TensorView& weight, const TensorView& bias) {
  VILA_RETURN_IF_ERROR(check_geometry("patch_embed", pixels, weight).status());
  if (!bias.empty()) VILA_RETURN_IF_ERROR(check_vector("patch_embed", "bias", bias, weight.dim(0)));
  return cpu::patch_embed(out, pixels, weight, bias);
}

Status patch_embed_backward(const TensorView& dpixels, const PatchEmbedGrads& grads,
                            const TensorView& dout, const TensorView& pixels,
                            const TensorView& weight) {
  constexpr const char* kOp = "patch_embed backward";
  VILA_ASSIGN_OR_RETURN(const Geometry g, check_geometry(kOp, pixels, weight));
  const int64_t n_patch = g.patches(), k = g.k();
  VILA_RETURN_IF_ERROR(check_matrix(kOp, "dout", dout, g.n * n_patch, g.c));
  if (dout.shape.rank != 3) {
    return invalid_argument("patch_embed backward: dout must be (N, P, C), got " +
                            dout.shape.to_string());
  }
  if (!dpixels.empty() && dpixels.shape != pixels.shape) {
    return invalid_argument("patch_embed backward: dpixels " + dpixels.shape.to_string() +
                            " differs from pixels " + pixels.shape.to_string());
  }
  if (!grads.weight.empty()) {
    VILA_RETURN_IF_ERROR(cpu::check_f32(kOp, "grad weight", grads.weight));
    if (grads.weight.shape != weight.shape) {
      return invalid_argument("patch_embed backward: grad weight " +
                              grads.weight.shape.to_string() + " differs from weight " +
                              weight.shape.to_string());
    }
  }
  if (!grads.bias.empty()) VILA_RETURN_IF_ERROR(check_vector(kOp, "grad bias", grads.bias, g.c));
  if (!dpixels.empty()) VILA_RETURN_IF_ERROR(cpu::check_f32(kOp, "dpixels", dpixels));

  const GemmPrecision fp32{};
  const TensorView w2(weight.data, DType::kF32, {g.c, k});    // (C, K)
  std::vector<float> cols(static_cast<size_t>(n_patch * k));  // (P, K) of one image
  const int64_t image_size = g.cin * g.hp * g.wp;
  if (!dpixels.empty()) std::fill(dpixels.f32(), dpixels.f32() + dpixels.numel(), 0.0f);
  for (int64_t img = 0; img < g.n; ++img) {
    const TensorView dy(dout.f32() + img * n_patch * g.c, DType::kF32, {n_patch, g.c});  // (P, C)
    const TensorView cols_view = f32_view(cols.data(), {n_patch, k});
    if (!grads.weight.empty()) {
      // dW (C, K) += [doutᵀ (C, P)] · [colsᵀ (K, P)]ᵀ: both operands read transposed.
      im2col(g, pixels.f32() + img * image_size, cols.data(), true);
      GemmOptions opts;
      opts.a_layout = Layout::kTransposed;
      opts.b_layout = Layout::kTransposed;
      opts.accumulate = true;
      VILA_RETURN_IF_ERROR(
          gemm(TensorView(grads.weight.data, DType::kF32, {g.c, k}), dy, cols_view, fp32, opts)
              .with_context(kOp));
    }
    if (!grads.bias.empty()) {
      float* db = grads.bias.f32();
      for (int64_t r = 0; r < n_patch; ++r) {
        for (int64_t c = 0; c < g.c; ++c) db[c] += dy.f32()[r * g.c + c];
      }
    }
    if (!dpixels.empty()) {
      // dcols (P, K) = dout (P, C) · [Wᵀ (K, C)]ᵀ, then scattered back onto the pixels.
      GemmOptions opts;
      opts.b_layout = Layout::kTransposed;
      VILA_RETURN_IF_ERROR(gemm(cols_view, dy, w2, fp32, opts).with_context(kOp));
      im2col(g, dpixels.f32() + img * image_size, cols.data(), false);
    }
  }
  return ok_status();
}

}  // namespace vila::train
