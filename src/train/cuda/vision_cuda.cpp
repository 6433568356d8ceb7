// CudaVisionTower and CudaProjector (vision_cuda.h): training forward and backward on the GPU.
#include "train/cuda/vision_cuda.h"

#include <string>

#include "backend/cuda/memory.h"
#include "backend/cuda/train_ops.h"
#include "backend/cuda/train_vlm_ops.h"
#include "train/cuda/span_attention.h"
#include "train/downsample.h"

namespace vila::train {

namespace {

constexpr const char* kEmb = "vision_tower/vision_model.embeddings.";
constexpr const char* kLayer = "vision_tower/vision_model.encoder.layers.";
constexpr const char* kProj = "mm_projector/";
constexpr int64_t kGeluAuxMultiple = 8;  // cuBLASLt's GELU_AUX needs N % 8 == 0

}  // namespace

// ---- tower ----

Status CudaVisionTower::bind(const VisionTowerConfig& config, TrainContext& ctx) {
  cfg_ = config;
  ctx_ = &ctx;
  C_ = config.hidden;
  F_ = config.intermediate;
  P_ = config.patches();
  K_ = config.channels * config.patch_size * config.patch_size;
  if (config.head_dim() % 2 != 0) {
    return unimplemented("CUDA training: vision_tower head_dim " +
                         std::to_string(config.head_dim()) + " is odd");
  }
  const DeviceParams& P = *ctx.params;
  const std::string emb = kEmb;
  VILA_ASSIGN_OR_RETURN(patch_w_, P.offset(emb + "patch_embedding.weight"));
  VILA_ASSIGN_OR_RETURN(patch_b_, P.offset(emb + "patch_embedding.bias"));
  VILA_ASSIGN_OR_RETURN(pos_, P.offset(emb + "position_embedding.weight"));
  layers_.assign(static_cast<size_t>(config.layers_run()), {});
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string pre = kLayer + std::to_string(l) + ".";
    LayerOffsets& lo = layers_[l];
    VILA_ASSIGN_OR_RETURN(lo.ln1_w, P.offset(pre + "layer_norm1.weight"));
    VILA_ASSIGN_OR_RETURN(lo.ln1_b, P.offset(pre + "layer_norm1.bias"));
    VILA_ASSIGN_OR_RETURN(lo.ln2_w, P.offset(pre + "layer_norm2.weight"));
    VILA_ASSIGN_OR_RETURN(lo.ln2_b, P.offset(pre + "layer_norm2.bias"));
    VILA_ASSIGN_OR_RETURN(lo.wqkv, P.offset(pre + "self_attn.q_proj.weight"));
    VILA_ASSIGN_OR_RETURN(lo.bqkv, P.offset(pre + "self_attn.q_proj.bias"));
    VILA_ASSIGN_OR_RETURN(const int64_t wv, P.offset(pre + "self_attn.v_proj.weight"));
    VILA_ASSIGN_OR_RETURN(const int64_t bv, P.offset(pre + "self_attn.v_proj.bias"));
    if (wv != lo.wqkv + 2 * C_ * C_ || bv != lo.bqkv + 2 * C_) {
      return internal_error("CudaVisionTower: layer " + std::to_string(l) +
                            " q/k/v are not one fused group");
    }
    VILA_ASSIGN_OR_RETURN(lo.wo, P.offset(pre + "self_attn.out_proj.weight"));
    VILA_ASSIGN_OR_RETURN(lo.bo, P.offset(pre + "self_attn.out_proj.bias"));
    VILA_ASSIGN_OR_RETURN(lo.w1, P.offset(pre + "mlp.fc1.weight"));
    VILA_ASSIGN_OR_RETURN(lo.b1, P.offset(pre + "mlp.fc1.bias"));
    VILA_ASSIGN_OR_RETURN(lo.w2, P.offset(pre + "mlp.fc2.weight"));
    VILA_ASSIGN_OR_RETURN(lo.b2, P.offset(pre + "mlp.fc2.bias"));
  }
  return ok_status();
}

AttnDims CudaVisionTower::attn_dims() const {
  AttnDims d{cfg_.heads, cfg_.heads, cfg_.head_dim(), /*causal=*/false};
  d.q_stride = d.kv_stride = 3 * C_;  // the column blocks of the (R, 3C) q/k/v output
  return d;
}

StatusOr<CudaVisionTower::Saved> CudaVisionTower::saved(size_t l) {
  const std::string p = "vit." + std::to_string(l) + ".";
  Scratch& s = ctx_->scratch;
  const int64_t R = R_;
  Saved v{};
  VILA_ASSIGN_OR_RETURN(v.x, s.get<float>("vit.x" + std::to_string(l), R * C_));
  VILA_ASSIGN_OR_RETURN(v.x2, s.get<float>(p + "x2", R * C_));
  VILA_ASSIGN_OR_RETURN(v.mean1, s.get<float>(p + "mean1", R));
  VILA_ASSIGN_OR_RETURN(v.rstd1, s.get<float>(p + "rstd1", R));
  VILA_ASSIGN_OR_RETURN(v.mean2, s.get<float>(p + "mean2", R));
  VILA_ASSIGN_OR_RETURN(v.rstd2, s.get<float>(p + "rstd2", R));
  VILA_ASSIGN_OR_RETURN(v.lse, s.get<float>(p + "lse", R * cfg_.heads));
  VILA_ASSIGN_OR_RETURN(v.h1, s.get<uint16_t>(p + "h1", R * C_));
  // q | k | v: the column blocks of one (R, 3C) bf16 GEMM output (row stride 3C, no split)
  VILA_ASSIGN_OR_RETURN(v.q, s.get<uint16_t>(p + "qkv", R * 3 * C_));
  v.k = v.q + C_;
  v.v = v.q + 2 * C_;
  VILA_ASSIGN_OR_RETURN(v.a, s.get<uint16_t>(p + "a", R * C_));
  VILA_ASSIGN_OR_RETURN(v.h2, s.get<uint16_t>(p + "h2", R * C_));
  VILA_ASSIGN_OR_RETURN(v.f1, s.get<uint16_t>(p + "f1", R * F_));
  VILA_ASSIGN_OR_RETURN(v.g, s.get<uint16_t>(p + "g", R * F_));
  return v;
}

Status CudaVisionTower::forward(const float* pixels, int64_t n_images) {
  if (pixels == nullptr || n_images <= 0) {
    return invalid_argument("CudaVisionTower: need at least one image");
  }
  N_ = n_images;
  R_ = N_ * P_;
  const int64_t S = cfg_.image_size;
  const int64_t n_px = N_ * cfg_.channels * S * S;
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  const DeviceParams& P = *ctx_->params;
  VILA_ASSIGN_OR_RETURN(float* px, sc.get<float>("vit.pixels", n_px));
  VILA_RETURN_IF_ERROR(
      cuda::copy_to_device(px, pixels, static_cast<size_t>(n_px) * sizeof(float), st));
  VILA_ASSIGN_OR_RETURN(cols_, sc.get<uint16_t>("vit.cols", R_ * K_));
  VILA_RETURN_IF_ERROR(
      cuda::train_patch_im2col(cols_, px, N_, cfg_.channels, S, cfg_.patch_size, st));
  // x0 = cols Wpatchᵀ + b + pos
  const std::string last = "vit.x" + std::to_string(layers_.size());
  VILA_ASSIGN_OR_RETURN(float* x0, sc.get<float>(layers_.empty() ? last : "vit.x0", R_ * C_));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_forward(x0, DType::kF32, cols_, R_, patch_w_, C_, K_, patch_b_, false));
  VILA_RETURN_IF_ERROR(cuda::train_add_position(x0, P.value(pos_), N_, P_, C_, st));
  for (size_t l = 0; l < layers_.size(); ++l) {
    VILA_ASSIGN_OR_RETURN(float* x_out, sc.get<float>("vit.x" + std::to_string(l + 1), R_ * C_));
    VILA_RETURN_IF_ERROR(layer_forward(l, x_out));
  }
  VILA_ASSIGN_OR_RETURN(out_, sc.get<float>(last, R_ * C_));
  return ok_status();
}

Status CudaVisionTower::layer_forward(size_t l, float* x_out) {
  const LayerOffsets& lo = layers_[l];
  VILA_ASSIGN_OR_RETURN(Saved s, saved(l));
  void* st = ctx_->st();
  const DeviceParams& P = *ctx_->params;
  const int64_t R = R_;
  const int64_t C = C_;
  const int64_t F = F_;
  const auto eps = static_cast<float>(cfg_.layer_norm_eps);
  // h1 = LN1(x); [q | k | v] (R, 3C) bf16 = h1 Wqkvᵀ + b, attended in place (strided)
  VILA_RETURN_IF_ERROR(cuda::train_layer_norm_forward(
      s.h1, s.mean1, s.rstd1, s.x, P.value(lo.ln1_w), P.value(lo.ln1_b), R, C, eps, st));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_forward(s.q, DType::kBF16, s.h1, R, lo.wqkv, 3 * C, C, lo.bqkv, false));
  const AttnDims dims = attn_dims();
  VILA_RETURN_IF_ERROR(
      span_attention_forward(*ctx_, s.a, s.lse, s.q, s.k, s.v, uniform_spans(N_, P_), dims));
  // x2 = x + a Woᵀ + bo
  VILA_RETURN_IF_ERROR(
      ctx_->linear_forward(s.x2, DType::kF32, s.a, R, lo.wo, C, C, lo.bo, false, nullptr, s.x));
  // x_out = x2 + gelu_tanh(LN2(x2) W1ᵀ + b1) W2ᵀ + b2
  VILA_RETURN_IF_ERROR(cuda::train_layer_norm_forward(
      s.h2, s.mean2, s.rstd2, s.x2, P.value(lo.ln2_w), P.value(lo.ln2_b), R, C, eps, st));
  // f1 = h2 W1ᵀ + b1, g = gelu_tanh(f1): one GEMM (cuBLASLt's GELU_AUX_BIAS epilogue) when F
  // is a multiple of 8 (its aux rows), else the GEMM and the GELU kernel
  if (F % kGeluAuxMultiple == 0) {
    VILA_RETURN_IF_ERROR(
        ctx_->linear_forward(s.g, DType::kBF16, s.h2, R, lo.w1, F, C, lo.b1, false, s.f1));
  } else {
    VILA_RETURN_IF_ERROR(
        ctx_->linear_forward(s.f1, DType::kBF16, s.h2, R, lo.w1, F, C, lo.b1, false));
    VILA_RETURN_IF_ERROR(cuda::train_gelu_forward(s.g, s.f1, R * F, cuda::TrainGelu::kTanh, st));
  }
  return ctx_->linear_forward(x_out, DType::kF32, s.g, R, lo.w2, C, F, lo.b2, false, nullptr, s.x2);
}

Status CudaVisionTower::layer_backward(size_t l, float* dx) {
  const LayerOffsets& lo = layers_[l];
  VILA_ASSIGN_OR_RETURN(Saved s, saved(l));
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  DeviceParams& P = *ctx_->params;
  const int64_t R = R_;
  const int64_t C = C_;
  const int64_t F = F_;
  VILA_ASSIGN_OR_RETURN(uint16_t * dxb, sc.get<uint16_t>("vit.dxb", R * C));
  VILA_ASSIGN_OR_RETURN(float* dh, sc.get<float>("vit.dh", R * C));
  VILA_ASSIGN_OR_RETURN(uint16_t * dg, sc.get<uint16_t>("vit.dg", R * F));
  VILA_ASSIGN_OR_RETURN(uint16_t * da, sc.get<uint16_t>("vit.da", R * C));
  VILA_ASSIGN_OR_RETURN(uint16_t * dqkv, sc.get<uint16_t>("vit.dqkv", R * 3 * C));
  // MLP branch (dxb = bf16(dx) on entry: the caller's conversion or the layer above's LN1)
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(dg, DType::kBF16, 0.0f, dxb, s.g, R, lo.w2, C, F, lo.b2));
  VILA_RETURN_IF_ERROR(cuda::train_gelu_backward(dg, dg, s.f1, R * F, cuda::TrainGelu::kTanh, st));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(dh, DType::kF32, 0.0f, dg, s.h2, R, lo.w1, F, C, lo.b1));
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(lo.ln2_w, C));  // dw, db += (lazy zeroing)
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(lo.ln2_b, C));
  VILA_RETURN_IF_ERROR(cuda::train_layer_norm_backward(dx, P.grad(lo.ln2_w), P.grad(lo.ln2_b), dh,
                                                       s.x2, P.value(lo.ln2_w), s.mean2, s.rstd2, R,
                                                       C, /*accumulate=*/true, st, dxb));
  // Attention branch
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(da, DType::kBF16, 0.0f, dxb, s.a, R, lo.wo, C, C, lo.bo));
  const AttnDims dims = attn_dims();
  VILA_RETURN_IF_ERROR(span_attention_backward(*ctx_, dqkv, da, {s.q, s.k, s.v, s.a, s.lse},
                                               nullptr, nullptr, uniform_spans(N_, P_), dims));
  VILA_RETURN_IF_ERROR(
      ctx_->linear_backward(dh, DType::kF32, 0.0f, dqkv, s.h1, R, lo.wqkv, 3 * C, C, lo.bqkv));
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(lo.ln1_w, C));
  VILA_RETURN_IF_ERROR(P.prepare_grad_add(lo.ln1_b, C));
  return cuda::train_layer_norm_backward(dx, P.grad(lo.ln1_w), P.grad(lo.ln1_b), dh, s.x,
                                         P.value(lo.ln1_w), s.mean1, s.rstd1, R, C,
                                         /*accumulate=*/true, st, dxb);
}

Status CudaVisionTower::backward(const float* dfeatures) {
  if (R_ == 0) return invalid_argument("CudaVisionTower: backward before forward");
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  DeviceParams& P = *ctx_->params;
  VILA_ASSIGN_OR_RETURN(float* dx, sc.get<float>("vit.dx", R_ * C_));
  VILA_ASSIGN_OR_RETURN(uint16_t * dxb, sc.get<uint16_t>("vit.dxb", R_ * C_));
  VILA_RETURN_IF_ERROR(
      cuda::copy_device_to_device(dx, dfeatures, static_cast<size_t>(R_ * C_) * sizeof(float), st));
  VILA_RETURN_IF_ERROR(cuda::train_f32_to_bf16(dxb, dx, R_ * C_, st));
  // Each layer's backward reads dxb = bf16(dx) and leaves it so for the next (its LN1 writes both).
  for (size_t l = layers_.size(); l-- > 0;) VILA_RETURN_IF_ERROR(layer_backward(l, dx));
  if (float* dpos = P.grad(pos_); dpos != nullptr) {
    VILA_RETURN_IF_ERROR(P.prepare_grad_add(pos_, P_ * C_));
    VILA_RETURN_IF_ERROR(cuda::train_position_backward(dpos, dx, N_, P_, C_, st));
  }
  return ctx_->linear_backward(nullptr, DType::kF32, 0.0f, dxb, cols_, R_, patch_w_, C_, K_,
                               patch_b_);
}

// ---- projector ----

Status CudaProjector::bind(const VlmConfig& config, TrainContext& ctx) {
  ctx_ = &ctx;
  VILA_ASSIGN_OR_RETURN(std::vector<ProjStage> specs, projector_stages(config));
  in_tokens_ = config.vision.patches();
  in_dim_ = config.vision.hidden;
  stages_.assign(specs.size(), {});
  int64_t tokens = in_tokens_;
  const DeviceParams& P = *ctx.params;
  for (size_t i = 0; i < specs.size(); ++i) {
    Stage& st = stages_[i];
    st.spec = specs[i];
    st.tokens_in = tokens;
    const bool last = i + 1 == specs.size();
    switch (st.spec.kind) {
      case ProjStageKind::kSpatialToChannel: {
        int64_t side = 1;
        while (side * side < tokens) ++side;
        if (side * side != tokens) {
          return invalid_argument("CudaProjector: " + std::to_string(tokens) +
                                  " tokens per image are not a square grid");
        }
        tokens = spatial_to_channel_tokens(side, st.spec.factor);
        st.in_dtype = st.out_dtype = DType::kF32;
        break;
      }
      case ProjStageKind::kLayerNorm:
        st.in_dtype = DType::kF32;
        st.out_dtype = DType::kBF16;
        break;
      case ProjStageKind::kLinear:
        st.in_dtype = DType::kBF16;
        st.out_dtype = last ? DType::kF32 : DType::kBF16;
        break;
      case ProjStageKind::kGelu:
        st.in_dtype = st.out_dtype = DType::kBF16;
        break;
    }
    if (last && st.out_dtype != DType::kF32) {
      return unimplemented("CUDA training: the projector must end with a Linear (" + st.spec.name +
                           ")");
    }
    if (st.spec.kind == ProjStageKind::kLayerNorm || st.spec.kind == ProjStageKind::kLinear) {
      VILA_ASSIGN_OR_RETURN(st.w, P.offset(kProj + st.spec.name + ".weight"));
      VILA_ASSIGN_OR_RETURN(st.b, P.offset(kProj + st.spec.name + ".bias"));
    }
    st.tokens_out = tokens;
  }
  return ok_status();
}

Status CudaProjector::forward(const float* in, int64_t n_images) {
  N_ = n_images;
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  const DeviceParams& P = *ctx_->params;
  if (stages_.empty()) {
    const int64_t n = N_ * in_tokens_ * in_dim_;
    VILA_ASSIGN_OR_RETURN(out_, sc.get<float>("proj.out", n));
    return cuda::copy_device_to_device(out_, in, static_cast<size_t>(n) * sizeof(float), st);
  }
  const void* cur = in;
  DType cur_dtype = DType::kF32;
  for (size_t i = 0; i < stages_.size(); ++i) {
    Stage& s = stages_[i];
    const std::string name = "proj." + std::to_string(i);
    const int64_t rows = N_ * s.tokens_in;
    const int64_t in_n = rows * s.spec.in_dim;
    if (cur_dtype != s.in_dtype) {  // the stage's own input copy in its dtype
      VILA_ASSIGN_OR_RETURN(
          void* conv,
          sc.get_bytes(name + ".in", static_cast<size_t>(dtype_bytes(s.in_dtype, in_n))));
      VILA_RETURN_IF_ERROR(
          s.in_dtype == DType::kBF16
              ? cuda::train_f32_to_bf16(conv, static_cast<const float*>(cur), in_n, st)
              : cuda::train_bf16_to_f32(static_cast<float*>(conv), cur, in_n, st));
      cur = conv;
    }
    s.in = const_cast<void*>(cur);
    const int64_t out_rows = N_ * s.tokens_out;
    const int64_t out_n = out_rows * s.spec.out_dim;
    VILA_ASSIGN_OR_RETURN(
        void* y, sc.get_bytes(name + ".out", static_cast<size_t>(dtype_bytes(s.out_dtype, out_n))));
    switch (s.spec.kind) {
      case ProjStageKind::kSpatialToChannel: {
        int64_t side = 1;
        while (side * side < s.tokens_in) ++side;
        VILA_RETURN_IF_ERROR(cuda::train_space_to_channel(static_cast<float*>(y),
                                                          static_cast<const float*>(s.in), N_, side,
                                                          s.spec.in_dim, s.spec.factor, st));
        break;
      }
      case ProjStageKind::kLayerNorm: {
        VILA_ASSIGN_OR_RETURN(s.mean, sc.get<float>(name + ".mean", rows));
        VILA_ASSIGN_OR_RETURN(s.rstd, sc.get<float>(name + ".rstd", rows));
        VILA_RETURN_IF_ERROR(cuda::train_layer_norm_forward(
            y, s.mean, s.rstd, static_cast<const float*>(s.in), P.value(s.w), P.value(s.b), rows,
            s.spec.in_dim, kProjectorLnEps, st));
        break;
      }
      case ProjStageKind::kLinear:
        VILA_RETURN_IF_ERROR(ctx_->linear_forward(y, s.out_dtype, s.in, rows, s.w, s.spec.out_dim,
                                                  s.spec.in_dim, s.b, false));
        break;
      case ProjStageKind::kGelu:
        VILA_RETURN_IF_ERROR(cuda::train_gelu_forward(y, s.in, in_n, cuda::TrainGelu::kErf, st));
        break;
    }
    cur = y;
    cur_dtype = s.out_dtype;
  }
  out_ = static_cast<float*>(const_cast<void*>(cur));
  return ok_status();
}

Status CudaProjector::backward(const float* dout, float* din) {
  Scratch& sc = ctx_->scratch;
  void* st = ctx_->st();
  DeviceParams& P = *ctx_->params;
  if (stages_.empty()) {
    if (din == nullptr) return ok_status();
    return cuda::copy_device_to_device(
        din, dout, static_cast<size_t>(N_ * in_tokens_ * in_dim_) * sizeof(float), st);
  }
  // dy: d(stage output) in the dtype the stage's backward reads (f32 for spatial-to-channel and
  // LayerNorm, bf16 for Linear and GELU); ping-pong buffers per dtype.
  const void* dy = dout;
  DType dy_dtype = DType::kF32;
  int flip = 0;
  for (size_t r = stages_.size(); r-- > 0;) {
    Stage& s = stages_[r];
    const int64_t rows_in = N_ * s.tokens_in;
    const int64_t rows_out = N_ * s.tokens_out;
    const int64_t in_n = rows_in * s.spec.in_dim;
    const int64_t out_n = rows_out * s.spec.out_dim;
    const DType want = s.spec.kind == ProjStageKind::kLinear || s.spec.kind == ProjStageKind::kGelu
                           ? DType::kBF16
                           : DType::kF32;
    if (dy_dtype != want) {
      VILA_ASSIGN_OR_RETURN(
          void* conv, sc.get_bytes("proj.dconv", static_cast<size_t>(dtype_bytes(want, out_n))));
      VILA_RETURN_IF_ERROR(
          want == DType::kBF16
              ? cuda::train_f32_to_bf16(conv, static_cast<const float*>(dy), out_n, st)
              : cuda::train_bf16_to_f32(static_cast<float*>(conv), dy, out_n, st));
      dy = conv;
    }
    const bool need_dx = r > 0 || din != nullptr;
    // The dtype the stage before wants (r == 0: din, f32).
    DType dx_dtype = DType::kF32;
    if (r > 0) {
      const ProjStageKind before = stages_[r - 1].spec.kind;
      dx_dtype = before == ProjStageKind::kLinear || before == ProjStageKind::kGelu ? DType::kBF16
                                                                                    : DType::kF32;
    }
    if (s.spec.kind == ProjStageKind::kGelu) dx_dtype = DType::kBF16;
    if (s.spec.kind == ProjStageKind::kLayerNorm ||
        s.spec.kind == ProjStageKind::kSpatialToChannel) {
      dx_dtype = DType::kF32;
    }
    void* dx = nullptr;
    if (need_dx) {
      if (r == 0 && dx_dtype == DType::kF32) {
        dx = din;
      } else {
        const std::string name = "proj.d" + std::to_string(flip ^= 1);
        VILA_ASSIGN_OR_RETURN(dx,
                              sc.get_bytes(name, static_cast<size_t>(dtype_bytes(dx_dtype, in_n))));
      }
    }
    switch (s.spec.kind) {
      case ProjStageKind::kSpatialToChannel: {
        int64_t side = 1;
        while (side * side < s.tokens_in) ++side;
        if (need_dx) {
          VILA_RETURN_IF_ERROR(cuda::train_space_to_channel_backward(
              static_cast<float*>(dx), static_cast<const float*>(dy), N_, side, s.spec.in_dim,
              s.spec.factor, st));
        }
        break;
      }
      case ProjStageKind::kLayerNorm: {
        float* dxf = static_cast<float*>(dx);
        if (dxf == nullptr) {
          VILA_ASSIGN_OR_RETURN(dxf, sc.get<float>("proj.dsink", in_n));
        }
        VILA_RETURN_IF_ERROR(P.prepare_grad_add(s.w, s.spec.in_dim));  // dw, db +=
        VILA_RETURN_IF_ERROR(P.prepare_grad_add(s.b, s.spec.in_dim));
        VILA_RETURN_IF_ERROR(cuda::train_layer_norm_backward(
            dxf, P.grad(s.w), P.grad(s.b), static_cast<const float*>(dy),
            static_cast<const float*>(s.in), P.value(s.w), s.mean, s.rstd, rows_in, s.spec.in_dim,
            /*accumulate=*/false, st));
        break;
      }
      case ProjStageKind::kLinear:
        VILA_RETURN_IF_ERROR(ctx_->linear_backward(dx, dx_dtype, 0.0f, dy, s.in, rows_in, s.w,
                                                   s.spec.out_dim, s.spec.in_dim, s.b));
        break;
      case ProjStageKind::kGelu:
        if (need_dx) {
          VILA_RETURN_IF_ERROR(
              cuda::train_gelu_backward(dx, dy, s.in, in_n, cuda::TrainGelu::kErf, st));
        }
        break;
    }
    if (!need_dx) break;
    dy = dx;
    dy_dtype = dx_dtype;
  }
  if (din != nullptr && dy != din) {  // the first stage produced bf16 (a Linear or GELU first)
    return unimplemented("CUDA training: the projector's first stage must take fp32 features");
  }
  return ok_status();
}

}  // namespace vila::train
