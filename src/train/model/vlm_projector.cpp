// VILA multimodal projector forward / backward for training (see projector.h).
#include "train/model/vlm_projector.h"

#include <algorithm>

#include "train/activation.h"
#include "train/downsample.h"

namespace vila::train {

Status ProjectorModel::bind(const VlmConfig& config, ParamStore& store) {
  VILA_ASSIGN_OR_RETURN(std::vector<ProjStage> specs, projector_stages(config));
  in_tokens_ = config.vision.patches();
  in_channels_ = config.vision.hidden;
  stages_.clear();
  stages_.resize(specs.size());
  int64_t tokens = in_tokens_;
  const ParamModule m = ParamModule::kProjector;
  for (size_t i = 0; i < specs.size(); ++i) {
    Stage& st = stages_[i];
    st.spec = specs[i];
    st.tokens_in = tokens;
    const ProjStage& s = st.spec;
    if (s.kind == ProjStageKind::kLayerNorm) {
      VILA_ASSIGN_OR_RETURN(st.norm.weight, find_param(store, m, s.name + ".weight", {s.in_dim}));
      VILA_ASSIGN_OR_RETURN(st.norm.bias, find_param(store, m, s.name + ".bias", {s.in_dim}));
    } else if (s.kind == ProjStageKind::kLinear) {
      VILA_ASSIGN_OR_RETURN(st.lin.weight,
                            find_param(store, m, s.name + ".weight", {s.out_dim, s.in_dim}));
      VILA_ASSIGN_OR_RETURN(st.lin.bias, find_param(store, m, s.name + ".bias", {s.out_dim}));
    } else if (s.kind == ProjStageKind::kSpatialToChannel) {
      int64_t side = 1;
      while (side * side < tokens) ++side;
      if (side * side != tokens) {
        return invalid_argument("projector: " + std::to_string(tokens) +
                                " tokens per image are not a square grid");
      }
      tokens = spatial_to_channel_tokens(side, s.factor);
    }
    st.tokens_out = tokens;
  }
  return ok_status();
}

TensorView ProjectorModel::stage_input(size_t i, int64_t n_images) {
  const Stage& st = stages_[i];
  const Shape shape{n_images, st.tokens_in, st.spec.in_dim};
  if (i == 0) return f32_view(const_cast<float*>(in_), shape);
  return view(stages_[i].input, shape);
}

Status ProjectorModel::forward(const float* in, int64_t n_images,
                               const LinearPrecision& precision) {
  if (in == nullptr || n_images <= 0) {
    return invalid_argument("projector forward: need features of at least one image, got " +
                            std::to_string(n_images));
  }
  in_ = in;
  n_images_ = n_images;
  const int64_t N = n_images;
  if (stages_.empty()) {
    out_.assign(in, in + N * in_tokens_ * in_channels_);
    return ok_status();
  }
  for (size_t i = 0; i < stages_.size(); ++i) {
    Stage& st = stages_[i];
    const ProjStage& s = st.spec;
    const TensorView x = stage_input(i, N);
    std::vector<float>& dst = i + 1 < stages_.size() ? stages_[i + 1].input : out_;
    const TensorView y = buffer(dst, {N, st.tokens_out, s.out_dim});
    switch (s.kind) {
      case ProjStageKind::kSpatialToChannel:
        VILA_RETURN_IF_ERROR(spatial_to_channel_forward(y, x, s.factor));
        break;
      case ProjStageKind::kLayerNorm:
        VILA_RETURN_IF_ERROR(layer_norm_forward(y, x, st.norm.weight->view(), st.norm.bias->view(),
                                                kProjectorLnEps, &st.ln_saved));
        break;
      case ProjStageKind::kLinear:
        VILA_RETURN_IF_ERROR(linear_forward(y, x, st.lin.params(), precision.forward));
        break;
      case ProjStageKind::kGelu:
        VILA_RETURN_IF_ERROR(gelu_forward(y, x, cpu::GeluApprox::kErf));
        break;
    }
  }
  return ok_status();
}

Status ProjectorModel::backward(const float* dout, float* din, const LinearPrecision& precision) {
  if (in_ == nullptr) return invalid_argument("projector backward: no forward ran");
  const int64_t N = n_images_;
  if (stages_.empty()) {
    if (din != nullptr) std::copy(dout, dout + N * in_tokens_ * in_channels_, din);
    return ok_status();
  }
  // g holds d(stage output); after stage i it holds d(stage input).
  const Stage& last = stages_.back();
  g_.assign(dout, dout + N * last.tokens_out * last.spec.out_dim);
  int64_t g_tokens = last.tokens_out;
  for (size_t r = stages_.size(); r-- > 0;) {
    Stage& st = stages_[r];
    const ProjStage& s = st.spec;
    const TensorView x = stage_input(r, N);
    const TensorView dy = f32_view(g_.data(), {N, g_tokens, s.out_dim});
    const bool need_dx = r > 0 || din != nullptr;
    TensorView dx;
    if (need_dx) {
      dx = r == 0 ? f32_view(din, x.shape) : buffer(g_next_, x.shape);
    }
    switch (s.kind) {
      case ProjStageKind::kSpatialToChannel:
        if (need_dx) VILA_RETURN_IF_ERROR(spatial_to_channel_backward(dx, dy, s.factor));
        break;
      case ProjStageKind::kLayerNorm:
        VILA_RETURN_IF_ERROR(
            layer_norm_backward(dx, st.norm.grads(), dy, x, st.norm.weight->view(), st.ln_saved));
        break;
      case ProjStageKind::kLinear:
        VILA_RETURN_IF_ERROR(
            linear_backward(dx, st.lin.grads(), dy, x, st.lin.params(), precision));
        break;
      case ProjStageKind::kGelu:
        if (need_dx) VILA_RETURN_IF_ERROR(gelu_backward(dx, dy, x, cpu::GeluApprox::kErf));
        break;
    }
    if (r > 0) {
      std::swap(g_, g_next_);
      g_tokens = st.tokens_in;
    }
  }
  return ok_status();
}

}  // namespace vila::train
