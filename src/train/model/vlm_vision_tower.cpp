// SigLIP vision tower forward / backward for training (see vision_tower.h).
#include "train/model/vlm_vision_tower.h"

#include <cmath>

#include "train/activation.h"
#include "train/patch_embed.h"
#include "train/residual.h"

namespace vila::train {

namespace {

constexpr const char* kEmbPrefix = "vision_model.embeddings.";
constexpr const char* kLayerPrefix = "vision_model.encoder.layers.";

}  // namespace

Status VisionTowerModel::bind(const VisionTowerConfig& config, ParamStore& store) {
  config_ = config;
  const ParamModule m = ParamModule::kVisionTower;
  const int64_t C = config.hidden, F = config.intermediate, p = config.patch_size;
  const std::string emb = kEmbPrefix;
  VILA_ASSIGN_OR_RETURN(patch_w_, find_param(store, m, emb + "patch_embedding.weight",
                                             Shape{C, config.channels, p, p}));
  VILA_ASSIGN_OR_RETURN(patch_b_, find_param(store, m, emb + "patch_embedding.bias", Shape{C}));
  VILA_ASSIGN_OR_RETURN(
      pos_, find_param(store, m, emb + "position_embedding.weight", Shape{config.patches(), C}));
  layers_.assign(static_cast<size_t>(config.layers_run()), {});
  for (int64_t l = 0; l < config.layers_run(); ++l) {
    const std::string pre = kLayerPrefix + std::to_string(l) + ".";
    LayerParams& lp = layers_[static_cast<size_t>(l)];
    auto bind_pair = [&](const std::string& name, Param** w, Param** b, const Shape& ws,
                         int64_t bn) -> Status {
      VILA_ASSIGN_OR_RETURN(*w, find_param(store, m, pre + name + ".weight", ws));
      VILA_ASSIGN_OR_RETURN(*b, find_param(store, m, pre + name + ".bias", Shape{bn}));
      return ok_status();
    };
    VILA_RETURN_IF_ERROR(bind_pair("layer_norm1", &lp.ln1.weight, &lp.ln1.bias, Shape{C}, C));
    VILA_RETURN_IF_ERROR(bind_pair("layer_norm2", &lp.ln2.weight, &lp.ln2.bias, Shape{C}, C));
    VILA_RETURN_IF_ERROR(bind_pair("self_attn.q_proj", &lp.q.weight, &lp.q.bias, Shape{C, C}, C));
    VILA_RETURN_IF_ERROR(bind_pair("self_attn.k_proj", &lp.k.weight, &lp.k.bias, Shape{C, C}, C));
    VILA_RETURN_IF_ERROR(bind_pair("self_attn.v_proj", &lp.v.weight, &lp.v.bias, Shape{C, C}, C));
    VILA_RETURN_IF_ERROR(bind_pair("self_attn.out_proj", &lp.o.weight, &lp.o.bias, Shape{C, C}, C));
    VILA_RETURN_IF_ERROR(bind_pair("mlp.fc1", &lp.fc1.weight, &lp.fc1.bias, Shape{F, C}, F));
    VILA_RETURN_IF_ERROR(bind_pair("mlp.fc2", &lp.fc2.weight, &lp.fc2.bias, Shape{C, F}, C));
  }
  saved_.resize(layers_.size());
  return ok_status();
}

Status VisionTowerModel::forward(const float* pixels, int64_t n_images,
                                 const LinearPrecision& precision) {
  if (pixels == nullptr || n_images <= 0) {
    return invalid_argument("vision tower forward: need pixels of at least one image, got " +
                            std::to_string(n_images));
  }
  pixels_ = pixels;
  n_images_ = n_images;
  const int64_t N = n_images, P = config_.patches(), C = config_.hidden, S = config_.image_size;
  const TensorView px = f32_view(const_cast<float*>(pixels), {N, config_.channels, S, S});
  // x0 = patch_embed(pixels) + pos_emb  (R, C); the first layer's input (or the output when no
  // layer runs).
  std::vector<float>& x0 = saved_.empty() ? out_ : saved_[0].x;
  VILA_RETURN_IF_ERROR(
      patch_embed_forward(buffer(x0, {N, P, C}), px, patch_w_->view(), patch_b_->view()));
  const float* pos = pos_->value.data();  // (P, C)
  for (int64_t i = 0; i < N; ++i) {
    float* xi = x0.data() + i * P * C;
    for (int64_t j = 0; j < P * C; ++j) xi[j] += pos[j];
  }
  for (int64_t l = 0; l < static_cast<int64_t>(saved_.size()); ++l) {
    const bool last = l + 1 == static_cast<int64_t>(saved_.size());
    VILA_RETURN_IF_ERROR(
        layer_forward(l, precision, last ? out_ : saved_[static_cast<size_t>(l + 1)].x));
  }
  return ok_status();
}

Status VisionTowerModel::layer_forward(int64_t l, const LinearPrecision& precision,
                                       std::vector<float>& x_out) {
  const LayerParams& lp = layers_[static_cast<size_t>(l)];
  LayerSaved& s = saved_[static_cast<size_t>(l)];
  const int64_t N = n_images_, P = config_.patches(), C = config_.hidden, R = N * P;
  const int64_t H = config_.heads, D = config_.head_dim(), F = config_.intermediate;
  const auto eps = static_cast<float>(config_.layer_norm_eps);
  const GemmPrecision& fw = precision.forward;
  const TensorView x = view(s.x, {R, C});
  // h1 = LN1(x); q, k, v = Linear(h1)  (R, C)
  VILA_RETURN_IF_ERROR(layer_norm_forward(buffer(s.h1, {R, C}), x, lp.ln1.weight->view(),
                                          lp.ln1.bias->view(), eps, &s.n1));
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.q, {R, C}), view(s.h1, {R, C}), lp.q.params(), fw));
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.k, {R, C}), view(s.h1, {R, C}), lp.k.params(), fw));
  VILA_RETURN_IF_ERROR(linear_forward(buffer(s.v, {R, C}), view(s.h1, {R, C}), lp.v.params(), fw));
  // a = attention per image, full mask  (R, H*D)
  buffer(s.a, {R, C});
  s.att.resize(static_cast<size_t>(N));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t off = i * P * C;
    const Shape hs{P, H, D};
    VILA_RETURN_IF_ERROR(
        attention_forward(f32_view(s.a.data() + off, hs), f32_view(s.q.data() + off, hs),
                          f32_view(s.k.data() + off, hs), f32_view(s.v.data() + off, hs), nullptr,
                          AttentionMask::kFull, scale, &s.att[static_cast<size_t>(i)]));
  }
  // x2 = x + out_proj(a)
  VILA_RETURN_IF_ERROR(linear_forward(buffer(tmp_, {R, C}), view(s.a, {R, C}), lp.o.params(), fw));
  VILA_RETURN_IF_ERROR(add_forward(buffer(s.x2, {R, C}), x, view(tmp_, {R, C})));
  // x_out = x2 + fc2(gelu_tanh(fc1(LN2(x2))))
  VILA_RETURN_IF_ERROR(layer_norm_forward(buffer(s.h2, {R, C}), view(s.x2, {R, C}),
                                          lp.ln2.weight->view(), lp.ln2.bias->view(), eps, &s.n2));
  VILA_RETURN_IF_ERROR(
      linear_forward(buffer(s.f1, {R, F}), view(s.h2, {R, C}), lp.fc1.params(), fw));
  VILA_RETURN_IF_ERROR(
      gelu_forward(buffer(s.g, {R, F}), view(s.f1, {R, F}), cpu::GeluApprox::kTanh));
  VILA_RETURN_IF_ERROR(linear_forward(view(tmp_, {R, C}), view(s.g, {R, F}), lp.fc2.params(), fw));
  return add_forward(buffer(x_out, {R, C}), view(s.x2, {R, C}), view(tmp_, {R, C}));
}

Status VisionTowerModel::backward(const float* dfeatures, const LinearPrecision& precision) {
  if (pixels_ == nullptr) return invalid_argument("vision tower backward: no forward ran");
  const int64_t N = n_images_, P = config_.patches(), C = config_.hidden, R = N * P;
  buffer(dx_, {R, C});
  std::copy(dfeatures, dfeatures + R * C, dx_.data());
  for (int64_t l = static_cast<int64_t>(saved_.size()) - 1; l >= 0; --l) {
    VILA_RETURN_IF_ERROR(layer_backward(l, precision));
  }
  // x0 = patch_embed(pixels) + pos:  dpos (P, C) += sum over images of dx.
  if (pos_->trainable) {
    float* dpos = pos_->grad.data();
    for (int64_t i = 0; i < N; ++i) {
      const float* di = dx_.data() + i * P * C;
      for (int64_t j = 0; j < P * C; ++j) dpos[j] += di[j];
    }
  }
  const int64_t S = config_.image_size;
  const TensorView px = f32_view(const_cast<float*>(pixels_), {N, config_.channels, S, S});
  return patch_embed_backward({}, {patch_w_->grad_view(), patch_b_->grad_view()},
                              f32_view(dx_.data(), {N, P, C}), px, patch_w_->view());
}

Status VisionTowerModel::layer_backward(int64_t l, const LinearPrecision& precision) {
  const LayerParams& lp = layers_[static_cast<size_t>(l)];
  LayerSaved& s = saved_[static_cast<size_t>(l)];
  const int64_t N = n_images_, P = config_.patches(), C = config_.hidden, R = N * P;
  const int64_t H = config_.heads, D = config_.head_dim(), F = config_.intermediate;
  const TensorView dx = view(dx_, {R, C});  // d(layer output) on entry, d(layer input) on exit
  const TensorView dh = buffer(dh_, {R, C}), tmp = buffer(tmp_, {R, C});
  const TensorView df = buffer(df_, {R, F});
  // MLP branch: x_out = x2 + fc2(gelu(fc1(h2))), h2 = LN2(x2)
  VILA_RETURN_IF_ERROR(
      linear_backward(df, lp.fc2.grads(), dx, view(s.g, {R, F}), lp.fc2.params(), precision));
  VILA_RETURN_IF_ERROR(gelu_backward(df, df, view(s.f1, {R, F}), cpu::GeluApprox::kTanh));
  VILA_RETURN_IF_ERROR(
      linear_backward(dh, lp.fc1.grads(), df, view(s.h2, {R, C}), lp.fc1.params(), precision));
  VILA_RETURN_IF_ERROR(layer_norm_backward(tmp, lp.ln2.grads(), dh, view(s.x2, {R, C}),
                                           lp.ln2.weight->view(), s.n2));
  VILA_RETURN_IF_ERROR(accumulate_grad(dx, tmp));  // dx = d x2
  // Attention branch: x2 = x + o(a)
  const TensorView da = buffer(da_, {R, C});
  VILA_RETURN_IF_ERROR(
      linear_backward(da, lp.o.grads(), dx, view(s.a, {R, C}), lp.o.params(), precision));
  buffer(dq_, {R, C});
  buffer(dk_, {R, C});
  buffer(dv_, {R, C});
  for (int64_t i = 0; i < N; ++i) {
    const int64_t off = i * P * C;
    const Shape hs{P, H, D};
    VILA_RETURN_IF_ERROR(
        attention_backward(f32_view(dq_.data() + off, hs), f32_view(dk_.data() + off, hs),
                           f32_view(dv_.data() + off, hs), f32_view(da_.data() + off, hs),
                           f32_view(s.q.data() + off, hs), f32_view(s.k.data() + off, hs),
                           f32_view(s.v.data() + off, hs), s.att[static_cast<size_t>(i)]));
  }
  const TensorView h1 = view(s.h1, {R, C});
  VILA_RETURN_IF_ERROR(
      linear_backward(dh, lp.q.grads(), view(dq_, {R, C}), h1, lp.q.params(), precision));
  VILA_RETURN_IF_ERROR(
      linear_backward(tmp, lp.k.grads(), view(dk_, {R, C}), h1, lp.k.params(), precision));
  VILA_RETURN_IF_ERROR(accumulate_grad(dh, tmp));
  VILA_RETURN_IF_ERROR(
      linear_backward(tmp, lp.v.grads(), view(dv_, {R, C}), h1, lp.v.params(), precision));
  VILA_RETURN_IF_ERROR(accumulate_grad(dh, tmp));
  VILA_RETURN_IF_ERROR(
      layer_norm_backward(tmp, lp.ln1.grads(), dh, view(s.x, {R, C}), lp.ln1.weight->view(), s.n1));
  return accumulate_grad(dx, tmp);  // dx = d x
}

}  // namespace vila::train
