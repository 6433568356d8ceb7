// Projector forward: one item (tile or S2 block) at a time, stage by stage, ping-ponging two
// fp32 buffers. See projector.h for the op sequence of each mm_projector_type.
#include "model/projector.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <string>
#include <utility>

#include "core/mapped_file.h"
#include "format/json_config.h"
#include "model/weights.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/norm.h"
#include "ops/cpu/op_check.h"

namespace vila {

namespace {

constexpr float kProjectorLnEps = 1e-5f;  // nn.LayerNorm default

using StageSpec = ProjectorStageSpec;

StageSpec stc(int64_t k) { return {ProjectorStageKind::kSpatialToChannel, k}; }
StageSpec ln() { return {ProjectorStageKind::kLayerNorm, 0}; }
StageSpec lin(int64_t out) { return {ProjectorStageKind::kLinear, out}; }
StageSpec gelu() { return {ProjectorStageKind::kGelu, 0}; }

// Exact integer square root, or -1.
int64_t exact_sqrt(int64_t n) {
  if (n < 0) return -1;
  auto s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  while (s * s > n) --s;
  while ((s + 1) * (s + 1) <= n) ++s;
  return s * s == n ? s : -1;
}

}  // namespace

// The Sequential of each type (base_projector.py); indices are positions in the list.
StatusOr<std::vector<ProjectorStageSpec>> projector_stage_specs(const std::string& type, int64_t C,
                                                                int64_t H,
                                                                const std::string& config_path) {
  if (type == "identity") return std::vector<StageSpec>{};
  if (type == "linear") return std::vector<StageSpec>{lin(H)};
  if (type == "mlp_downsample" || type == "mlp_downsample_2x2_fix") {
    return std::vector<StageSpec>{stc(2), ln(), lin(H), gelu(), lin(H)};
  }
  if (type == "mlp_downsample_3x3_fix") {
    return std::vector<StageSpec>{stc(3), ln(), lin(3 * C), gelu(), ln(), lin(H), gelu(), lin(H)};
  }
  if (type == "mlp_downsample_3x3_s2") {
    return std::vector<StageSpec>{stc(3), ln(),       lin(3 * C), gelu(), ln(),   lin(C), gelu(),
                                  ln(),   lin(C / 3), gelu(),     ln(),   lin(H), gelu(), lin(H)};
  }
  if (type == "mlp_downsample_3x3_s2_new") {
    return std::vector<StageSpec>{stc(3), ln(), lin(4 * C), gelu(), ln(),  lin(2 * C),
                                  gelu(), ln(), lin(C),     gelu(), ln(),  lin(C / 3),
                                  gelu(), ln(), lin(H),     gelu(), lin(H)};
  }
  static const std::regex mlp_gelu(R"(^mlp(\d+)x_gelu$)");
  std::smatch m;
  if (std::regex_match(type, m, mlp_gelu)) {
    const int depth = std::stoi(m[1].str());
    if (depth < 1) return invalid_argument(config_path + ": mm_projector_type '" + type + "'");
    std::vector<StageSpec> specs{lin(H)};
    for (int i = 1; i < depth; ++i) {
      specs.push_back(gelu());
      specs.push_back(lin(H));
    }
    return specs;
  }
  return unimplemented(config_path + ": unknown mm_projector_type '" + type +
                       "' (supported: mlp_downsample, mlp_downsample_2x2_fix, "
                       "mlp_downsample_3x3_fix, mlp_downsample_3x3_s2, mlp_downsample_3x3_s2_new, "
                       "linear, mlp<N>x_gelu, identity)");
}

void spatial_to_channel(const float* x, int64_t s, int64_t c, int64_t k, float* out) {
  const int64_t g = (s + k - 1) / k;  // output grid side after zero padding to a multiple of k
  for (int64_t i = 0; i < g; ++i) {
    for (int64_t j = 0; j < g; ++j) {
      float* token = out + (i * g + j) * k * k * c;  // (k*k*C): dr major, then dc, then c
      for (int64_t dr = 0; dr < k; ++dr) {
        for (int64_t dc = 0; dc < k; ++dc) {
          float* dst = token + (dr * k + dc) * c;
          const int64_t r = k * i + dr, col = k * j + dc;
          if (r < s && col < s) {
            const float* src = x + (r * s + col) * c;
            std::copy(src, src + c, dst);
          } else {
            std::fill(dst, dst + c, 0.0f);  // padding
          }
        }
      }
    }
  }
}

StatusOr<std::unique_ptr<Projector>> Projector::load(const std::string& dir, int64_t in_channels,
                                                     int64_t llm_hidden) {
  const std::string config_path = path_join(dir, "config.json");
  VILA_ASSIGN_OR_RETURN(JsonFile config, load_json_file(config_path));
  if (!config.json.is_object()) return invalid_argument(config_path + ": expected a JSON object");
  std::unique_ptr<Projector> p(new Projector());
  VILA_ASSIGN_OR_RETURN(p->type_, json_string(config, config.json, "mm_projector_type"));
  const int64_t C = in_channels, H = llm_hidden;
  if (C <= 0 || H <= 0) {
    return invalid_argument(config_path + ": projector needs positive mm_hidden_size (" +
                            std::to_string(C) + ") and hidden_size (" + std::to_string(H) + ")");
  }
  VILA_ASSIGN_OR_RETURN(std::vector<StageSpec> specs,
                        projector_stage_specs(p->type_, C, H, config_path));
  VILA_ASSIGN_OR_RETURN(p->checkpoint_, Checkpoint::open_dir(dir));
  const Checkpoint& ckpt = *p->checkpoint_;
  auto tensor = [&](const std::string& name, const Shape& shape) {
    return checkpoint_weight(ckpt, name, shape);
  };

  int64_t width = C;
  for (size_t i = 0; i < specs.size(); ++i) {
    ProjectorStage st;
    st.kind = specs[i].kind;
    // nn.Linear as the whole `layers` module ("linear") has no index in its tensor names.
    st.name = p->type_ == "linear" ? std::string("layers") : "layers." + std::to_string(i);
    st.in_dim = width;
    switch (st.kind) {
      case ProjectorStageKind::kSpatialToChannel:
        st.factor = specs[i].arg;
        st.out_dim = width * st.factor * st.factor;
        break;
      case ProjectorStageKind::kLayerNorm: {
        st.out_dim = width;
        VILA_ASSIGN_OR_RETURN(st.norm_w, tensor(st.name + ".weight", {width}));
        VILA_ASSIGN_OR_RETURN(st.norm_b, tensor(st.name + ".bias", {width}));
        break;
      }
      case ProjectorStageKind::kLinear: {
        st.out_dim = specs[i].arg;
        VILA_ASSIGN_OR_RETURN(st.linear.weight, tensor(st.name + ".weight", {st.out_dim, width}));
        VILA_ASSIGN_OR_RETURN(st.linear.bias, tensor(st.name + ".bias", {st.out_dim}));
        break;
      }
      case ProjectorStageKind::kGelu:
        st.out_dim = width;
        break;
    }
    width = st.out_dim;
    p->stages_.push_back(std::move(st));
  }
  p->in_channels_ = C;
  p->out_channels_ = width;
  return p;
}

int64_t Projector::tokens_out(int64_t tokens_in) const {
  int64_t tokens = tokens_in;
  for (const ProjectorStage& st : stages_) {
    if (st.kind != ProjectorStageKind::kSpatialToChannel) continue;
    const int64_t s = exact_sqrt(tokens);
    if (s < 0) return -1;
    const int64_t g = (s + st.factor - 1) / st.factor;
    tokens = g * g;
  }
  return tokens;
}

Status Projector::forward(const float* in, int64_t n_items, int64_t tokens_in, float* out) const {
  if (n_items < 0 || tokens_in <= 0) {
    return invalid_argument("projector forward: need n_items >= 0 and tokens_in > 0, got " +
                            std::to_string(n_items) + ", " + std::to_string(tokens_in));
  }
  const int64_t tokens_final = tokens_out(tokens_in);
  if (tokens_final < 0) {
    return invalid_argument("projector " + type_ + ": " + std::to_string(tokens_in) +
                            " tokens per item do not form a square grid");
  }
  if (n_items == 0) return ok_status();
  if (in == nullptr || out == nullptr) return invalid_argument("projector forward: null buffer");

  // Largest (tokens x width) of any stage, for the two ping-pong buffers.
  size_t max_floats = static_cast<size_t>(tokens_in * in_channels_);
  {
    int64_t t = tokens_in;
    for (const ProjectorStage& st : stages_) {
      if (st.kind == ProjectorStageKind::kSpatialToChannel) {
        const int64_t g = (exact_sqrt(t) + st.factor - 1) / st.factor;
        t = g * g;
      }
      max_floats = std::max(max_floats, static_cast<size_t>(t * st.out_dim));
    }
  }
  std::vector<float> buf_a(max_floats), buf_b(max_floats);

  for (int64_t item = 0; item < n_items; ++item) {
    float* cur = buf_a.data();
    float* other = buf_b.data();
    int64_t t = tokens_in, w = in_channels_;
    std::copy(in + item * tokens_in * w, in + (item + 1) * tokens_in * w, cur);  // (Lin, C)
    for (const ProjectorStage& st : stages_) {
      const TensorView x(cur, DType::kF32, {t, w});  // (t, w)
      switch (st.kind) {
        case ProjectorStageKind::kSpatialToChannel: {  // (s*s, w) -> (g*g, k*k*w)
          const int64_t s = exact_sqrt(t);
          spatial_to_channel(cur, s, w, st.factor, other);
          const int64_t g = (s + st.factor - 1) / st.factor;
          t = g * g;
          std::swap(cur, other);
          break;
        }
        case ProjectorStageKind::kLayerNorm:  // in place
          VILA_RETURN_IF_ERROR(
              cpu::layer_norm(x, x, st.norm_w, st.norm_b, kProjectorLnEps).with_context(st.name));
          break;
        case ProjectorStageKind::kLinear:  // (t, w) -> (t, out_dim)
          VILA_RETURN_IF_ERROR(
              cpu::linear(TensorView(other, DType::kF32, {t, st.out_dim}), x, st.linear)
                  .with_context(st.name));
          std::swap(cur, other);
          break;
        case ProjectorStageKind::kGelu:  // in place, erf (nn.GELU())
          VILA_RETURN_IF_ERROR(cpu::gelu(x, x, cpu::GeluApprox::kErf));
          break;
      }
      w = st.out_dim;
    }
    std::copy(cur, cur + t * w, out + item * tokens_final * out_channels_);
  }
  return ok_status();
}

}  // namespace vila
