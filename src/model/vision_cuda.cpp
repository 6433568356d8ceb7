// CudaVisionEncoder: host code driving the launchers of backend/cuda (no CUDA headers here).
// This file: shape geometry, the weight layout and upload (create / create_random), accessors.
// The forward lives in vision_cuda_tower.cpp (SigLIP) and vision_cuda_projector.cpp (S2 merge,
// projector, encode); the shared internals and the dimension legend in vision_cuda_internal.h.
#include "model/vision_cuda.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "model/vision_cuda_internal.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/embedding.h"
#endif

namespace vila {

int64_t vision_cuda::exact_sqrt(int64_t n) {
  if (n < 0) return -1;
  auto s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  while (s * s > n) --s;
  while ((s + 1) * (s + 1) <= n) ++s;
  return s * s == n ? s : -1;
}

namespace {

using vision_cuda::exact_sqrt;
using vision_cuda::Geometry;
using vision_cuda::kMaxScales;
using vision_cuda::kPatchColumnAlign;
using vision_cuda::StageGeom;

[[maybe_unused]] Status finish_geometry(Geometry& g) {
  const SiglipConfig& c = g.tower;
  g.patches = c.n_patches();
  g.tokens = g.vision.select_feature == "patch" ? g.patches - 1 : g.patches;
  g.first_token = g.patches - g.tokens;
  g.patch_k = c.n_channels * c.patch_size * c.patch_size;
  g.patch_k_pad = (g.patch_k + kPatchColumnAlign - 1) / kPatchColumnAlign * kPatchColumnAlign;
  g.out_channels = g.stages.empty() ? g.vision.mm_hidden : g.stages.back().out_dim;
  if (g.n_scales() > kMaxScales) {
    return unimplemented("CudaVisionEncoder: " + std::to_string(g.n_scales()) +
                         " s2_scales (at most " + std::to_string(kMaxScales) + ")");
  }
  if (g.tokens <= 0 || g.tokens_out(g.tokens) < 0) {
    return invalid_argument(
        "CudaVisionEncoder: the projector needs a square token grid, the tower "
        "gives " +
        std::to_string(g.tokens) + " tokens per tile");
  }
  return ok_status();
}

// The Sequential of a projector type (model/projector.cpp's table, for create_random).
[[maybe_unused]] StatusOr<std::vector<StageGeom>> stages_for_type(const std::string& type,
                                                                  int64_t C, int64_t H) {
  VILA_ASSIGN_OR_RETURN(std::vector<ProjectorStageSpec> specs,
                        projector_stage_specs(type, C, H, "CudaVisionEncoder::create_random"));
  std::vector<StageGeom> stages;
  int64_t width = C;
  for (const ProjectorStageSpec& spec : specs) {
    StageGeom st{spec.kind, 0, width, width};
    if (spec.kind == ProjectorStageKind::kSpatialToChannel) {
      st.factor = spec.arg;
      st.out_dim = width * spec.arg * spec.arg;
    } else if (spec.kind == ProjectorStageKind::kLinear) {
      st.out_dim = spec.arg;
    }
    width = st.out_dim;
    stages.push_back(st);
  }
  return stages;
}

}  // namespace

VisionGeometry VisionGeometry::nvila_8b() {
  constexpr int64_t kHidden = 1152, kLayers = 27, kHeads = 16, kMlp = 4304;
  constexpr int64_t kImage = 448, kPatch = 14, kLlmHidden = 3584;
  VisionGeometry g;
  g.siglip.hidden = kHidden;
  g.siglip.intermediate = kMlp;
  g.siglip.n_layers = kLayers;
  g.siglip.n_heads = kHeads;
  g.siglip.image_size = kImage;
  g.siglip.patch_size = kPatch;
  g.siglip.act = cpu::GeluApprox::kTanh;
  g.vision.select_layer = -2;
  g.vision.select_feature = "cls_patch";
  g.vision.dynamic_s2 = true;
  g.vision.s2_scales = {448, 896, 1344};
  g.vision.s2_resize_idx = -1;
  g.vision.llm_hidden = kLlmHidden;
  g.projector_type = "mlp_downsample_2x2_fix";
  return g;
}

#ifdef VILA_WITH_CUDA

namespace {

using vision_cuda::align_up;
using vision_cuda::LayerSlots;
using vision_cuda::LinearSlot;
using vision_cuda::WeightLayout;

constexpr float kRandomNormLo = 0.9f, kRandomNormHi = 1.1f;  // LayerNorm weights
constexpr float kRandomBias = 0.02f;                         // biases, LayerNorm biases, pos_emb
constexpr uint64_t kSeedStride = 0x9E3779B97F4A7C15ull;

WeightLayout plan_weights(const Geometry& g, DType dt) {
  WeightLayout w;
  size_t at = 0;
  auto take = [&](DType t, int64_t count) {
    const size_t offset = at;
    at = align_up(at + static_cast<size_t>(dtype_bytes(t, count)));
    return offset;
  };
  auto linear = [&](int64_t n, int64_t k) {
    const size_t weight = take(dt, n * k);
    return LinearSlot{weight, take(DType::kF32, n), n, k, 0};
  };
  auto linear16 = [&](int64_t n, int64_t k) {  // + the 16-bit bias (16-bit outputs)
    LinearSlot slot = linear(n, k);
    slot.bias16 = take(dt, n);
    return slot;
  };
  const int64_t C = g.tower.hidden, F = g.tower.intermediate;
  w.patch = linear(C, g.patch_k_pad);
  w.pos = take(DType::kF32, g.patches * C);
  for (int64_t l = 0; l < g.layers_run; ++l) {
    LayerSlots& ls = w.layers.emplace_back();
    ls.ln1_w = take(DType::kF32, C);
    ls.ln1_b = take(DType::kF32, C);
    ls.qkv = linear16(3 * C, C);
    ls.o = linear16(C, C);  // 16-bit outputs: the residual stream
    ls.ln2_w = take(DType::kF32, C);
    ls.ln2_b = take(DType::kF32, C);
    ls.fc1 = linear16(F, C);
    ls.fc2 = linear16(C, F);
  }
  for (const StageGeom& st : g.stages) {
    LinearSlot slot;
    if (st.kind == ProjectorStageKind::kLayerNorm) {
      slot = {take(DType::kF32, st.in_dim), take(DType::kF32, st.in_dim), st.in_dim, 1, 0};
    } else if (st.kind == ProjectorStageKind::kLinear) {
      slot = linear(st.out_dim, st.in_dim);
    }
    w.stages.push_back(slot);
  }
  w.total = at;
  return w;
}

// Converts host tensors (any checkpoint dtype) and copies them to offsets of the allocation.
class HostUpload {
 public:
  HostUpload(char* base, void* stream) : base_(base), stream_(stream) {}
  // A linear layer's weight, fp32 bias and (slot.bias16) 16-bit bias; row_offset: the first
  // output row within the slot (q | k | v parts of one fused slot). A missing bias stays zero.
  Status put_linear(const LinearSlot& slot, const cpu::LinearWeight& lw, DType target,
                    int64_t row_offset = 0) {
    VILA_RETURN_IF_ERROR(
        put(slot.weight + static_cast<size_t>(dtype_bytes(target, row_offset * slot.k)), lw.weight,
            target));
    VILA_RETURN_IF_ERROR(
        put(slot.bias + static_cast<size_t>(row_offset) * 4, lw.bias, DType::kF32));
    if (slot.bias16 == 0 || lw.bias.empty()) {
      return ok_status();
    }
    return put(slot.bias16 + static_cast<size_t>(dtype_bytes(target, row_offset)), lw.bias, target);
  }
  // view (rows, src_cols) -> (rows, dst_cols) zero-padded; dst_cols 0: no padding.
  Status put(size_t offset, const TensorView& view, DType target, int64_t src_cols = 0,
             int64_t dst_cols = 0) {
    if (view.empty()) return ok_status();  // stays zero
    const int64_t n = view.numel();
    f32_.resize(static_cast<size_t>(n));
    VILA_RETURN_IF_ERROR(convert_to_f32(view.dtype, view.data, f32_.data(), n));
    int64_t count = n;
    if (dst_cols > src_cols) {
      const int64_t rows = n / src_cols;
      std::vector<float> padded(static_cast<size_t>(rows * dst_cols), 0.0f);
      for (int64_t r = 0; r < rows; ++r) {
        std::copy(f32_.begin() + r * src_cols, f32_.begin() + (r + 1) * src_cols,
                  padded.begin() + r * dst_cols);
      }
      f32_ = std::move(padded);
      count = rows * dst_cols;
    }
    if (target == DType::kF32) {
      return cuda::copy_to_device(base_ + offset, f32_.data(), static_cast<size_t>(count) * 4,
                                  stream_);
    }
    half_.resize(static_cast<size_t>(count));
    VILA_RETURN_IF_ERROR(convert_from_f32(f32_.data(), target, half_.data(), count));
    return cuda::copy_to_device(base_ + offset, half_.data(), static_cast<size_t>(count) * 2,
                                stream_);
  }

 private:
  char* base_;
  void* stream_;
  std::vector<float> f32_;
  std::vector<uint16_t> half_;
};
}  // namespace

StatusOr<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::create(
    const VisionEncoder& cpu, const CudaVisionOptions& options) {
  if (cuda::device_count() <= options.device) {
    return unimplemented("CudaVisionEncoder: no CUDA device " + std::to_string(options.device));
  }
  if (options.compute != DType::kBF16 && options.compute != DType::kF16) {
    return invalid_argument(std::string("CudaVisionEncoder: compute dtype ") +
                            dtype_name(options.compute) + " (supported: bf16, f16)");
  }
  if (options.max_tiles <= 0) return invalid_argument("CudaVisionEncoder: max_tiles must be > 0");
  VILA_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  Geometry& g = impl->geo;
  g.tower = cpu.tower().config();
  g.vision = cpu.config();
  g.layers_run = cpu.tower().layers_run();
  for (const ProjectorStage& st : cpu.projector().stages()) {
    g.stages.push_back({st.kind, st.factor, st.in_dim, st.out_dim});
  }
  VILA_RETURN_IF_ERROR(finish_geometry(g));
  VILA_ASSIGN_OR_RETURN(impl->stream, cuda::Stream::create());
  VILA_ASSIGN_OR_RETURN(impl->blas, cuda::Blas::create());

  const DType dt = options.compute;
  impl->layout = plan_weights(g, dt);
  const WeightLayout& lay = impl->layout;
  VILA_ASSIGN_OR_RETURN(impl->weights, cuda::DeviceBuffer::create(lay.total));
  VILA_RETURN_IF_ERROR(cuda::memset_device(impl->weights.data(), 0, lay.total, impl->s()));
  HostUpload up(impl->weights.as<char>(), impl->s());
  const SiglipWeights& sw = cpu.tower().weights();
  const int64_t C = g.tower.hidden;
  VILA_RETURN_IF_ERROR(up.put(lay.patch.weight, sw.patch_w, dt, g.patch_k, g.patch_k_pad));
  VILA_RETURN_IF_ERROR(up.put(lay.patch.bias, sw.patch_b, DType::kF32));
  VILA_RETURN_IF_ERROR(up.put(lay.pos, sw.pos_emb, DType::kF32));
  for (size_t l = 0; l < lay.layers.size(); ++l) {
    const SiglipLayerWeights& lw = sw.layers[l];
    const LayerSlots& ls = lay.layers[l];
    VILA_RETURN_IF_ERROR(up.put(ls.ln1_w, lw.ln1_w, DType::kF32));
    VILA_RETURN_IF_ERROR(up.put(ls.ln1_b, lw.ln1_b, DType::kF32));
    const cpu::LinearWeight* qkv[] = {&lw.q, &lw.k, &lw.v};
    for (int64_t part = 0; part < 3; ++part) {
      VILA_RETURN_IF_ERROR(up.put_linear(ls.qkv, *qkv[part], dt, part * C));
    }
    VILA_RETURN_IF_ERROR(up.put_linear(ls.o, lw.o, dt));
    VILA_RETURN_IF_ERROR(up.put_linear(ls.fc1, lw.fc1, dt));
    VILA_RETURN_IF_ERROR(up.put_linear(ls.fc2, lw.fc2, dt));
    VILA_RETURN_IF_ERROR(up.put(ls.ln2_w, lw.ln2_w, DType::kF32));
    VILA_RETURN_IF_ERROR(up.put(ls.ln2_b, lw.ln2_b, DType::kF32));
  }
  const std::vector<ProjectorStage>& ps = cpu.projector().stages();
  for (size_t i = 0; i < ps.size(); ++i) {
    const LinearSlot& slot = lay.stages[i];
    if (ps[i].kind == ProjectorStageKind::kLayerNorm) {
      VILA_RETURN_IF_ERROR(up.put(slot.weight, ps[i].norm_w, DType::kF32));
      VILA_RETURN_IF_ERROR(up.put(slot.bias, ps[i].norm_b, DType::kF32));
    } else if (ps[i].kind == ProjectorStageKind::kLinear) {
      VILA_RETURN_IF_ERROR(up.put(slot.weight, ps[i].linear.weight, dt));
      VILA_RETURN_IF_ERROR(up.put(slot.bias, ps[i].linear.bias, DType::kF32));
    }
  }
  VILA_RETURN_IF_ERROR(impl->bind(dt));
  VILA_RETURN_IF_ERROR(impl->ensure_capacity(options.max_tiles));
  VILA_RETURN_IF_ERROR(impl->stream.synchronize());
  return std::unique_ptr<CudaVisionEncoder>(new CudaVisionEncoder(std::move(impl)));
}

StatusOr<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::create_random(
    const VisionGeometry& geometry, DType dtype, uint64_t seed, CudaVisionOptions options) {
  options.compute = dtype;
  if (cuda::device_count() <= options.device) {
    return unimplemented("CudaVisionEncoder: no CUDA device " + std::to_string(options.device));
  }
  if (dtype != DType::kBF16 && dtype != DType::kF16) {
    return invalid_argument(std::string("CudaVisionEncoder::create_random: dtype ") +
                            dtype_name(dtype) + " (supported: bf16, f16)");
  }
  const SiglipConfig& sc = geometry.siglip;
  if (sc.hidden <= 0 || sc.intermediate <= 0 || sc.n_layers <= 0 || sc.n_heads <= 0 ||
      sc.hidden % sc.n_heads != 0 || sc.n_channels <= 0 || sc.patch_size <= 0 ||
      sc.image_size < sc.patch_size || options.max_tiles <= 0) {
    return invalid_argument("CudaVisionEncoder::create_random: bad SigLIP geometry");
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(options.device));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  Geometry& g = impl->geo;
  g.tower = sc;
  g.vision = geometry.vision;
  const int64_t n_states = sc.n_layers + 1, sel = g.vision.select_layer;
  g.layers_run = sel < 0 ? n_states + sel : sel;
  if (g.layers_run < 0 || g.layers_run >= n_states) {
    return invalid_argument("CudaVisionEncoder::create_random: select_layer " +
                            std::to_string(sel) + " outside " + std::to_string(n_states) +
                            " hidden states");
  }
  const int64_t K = g.vision.dynamic_s2 ? static_cast<int64_t>(g.vision.s2_scales.size()) : 1;
  if (K <= 0) return invalid_argument("CudaVisionEncoder::create_random: dynamic_s2, no scales");
  g.vision.mm_hidden = sc.hidden * K;
  VILA_ASSIGN_OR_RETURN(
      g.stages, stages_for_type(geometry.projector_type, g.vision.mm_hidden, g.vision.llm_hidden));
  VILA_RETURN_IF_ERROR(finish_geometry(g));
  VILA_ASSIGN_OR_RETURN(impl->stream, cuda::Stream::create());
  VILA_ASSIGN_OR_RETURN(impl->blas, cuda::Blas::create());

  impl->layout = plan_weights(g, dtype);
  const WeightLayout& lay = impl->layout;
  VILA_ASSIGN_OR_RETURN(impl->weights, cuda::DeviceBuffer::create(lay.total));
  char* base = impl->weights.as<char>();
  uint64_t tensor = 0;
  auto fill = [&](size_t offset, DType t, int64_t n, float lo, float hi) {
    return cuda::fill_uniform(base + offset, t, n, lo, hi, seed + kSeedStride * ++tensor,
                              impl->s());
  };
  auto fill_linear = [&](const LinearSlot& slot, int64_t fan_in) -> Status {
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    VILA_RETURN_IF_ERROR(fill(slot.weight, dtype, slot.n * slot.k, -bound, bound));
    VILA_RETURN_IF_ERROR(fill(slot.bias, DType::kF32, slot.n, -kRandomBias, kRandomBias));
    if (slot.bias16 == 0) {
      return ok_status();
    }
    // The same seed: the same values, rounded to the 16-bit type.
    return cuda::fill_uniform(base + slot.bias16, dtype, slot.n, -kRandomBias, kRandomBias,
                              seed + kSeedStride * tensor, impl->s());
  };
  auto fill_norm = [&](size_t w, size_t b, int64_t n) -> Status {
    VILA_RETURN_IF_ERROR(fill(w, DType::kF32, n, kRandomNormLo, kRandomNormHi));
    return fill(b, DType::kF32, n, -kRandomBias, kRandomBias);
  };
  const int64_t C = sc.hidden, F = sc.intermediate;
  VILA_RETURN_IF_ERROR(fill_linear(lay.patch, g.patch_k));
  VILA_RETURN_IF_ERROR(fill(lay.pos, DType::kF32, g.patches * C, -kRandomBias, kRandomBias));
  for (const LayerSlots& ls : lay.layers) {
    VILA_RETURN_IF_ERROR(fill_norm(ls.ln1_w, ls.ln1_b, C));
    VILA_RETURN_IF_ERROR(fill_linear(ls.qkv, C));
    VILA_RETURN_IF_ERROR(fill_linear(ls.o, C));
    VILA_RETURN_IF_ERROR(fill_norm(ls.ln2_w, ls.ln2_b, C));
    VILA_RETURN_IF_ERROR(fill_linear(ls.fc1, C));
    VILA_RETURN_IF_ERROR(fill_linear(ls.fc2, F));
  }
  for (size_t i = 0; i < g.stages.size(); ++i) {
    if (g.stages[i].kind == ProjectorStageKind::kLayerNorm) {
      VILA_RETURN_IF_ERROR(fill_norm(lay.stages[i].weight, lay.stages[i].bias, g.stages[i].in_dim));
    } else if (g.stages[i].kind == ProjectorStageKind::kLinear) {
      VILA_RETURN_IF_ERROR(fill_linear(lay.stages[i], g.stages[i].in_dim));
    }
  }
  VILA_RETURN_IF_ERROR(impl->bind(dtype));
  VILA_RETURN_IF_ERROR(impl->ensure_capacity(options.max_tiles));
  VILA_RETURN_IF_ERROR(impl->stream.synchronize());
  return std::unique_ptr<CudaVisionEncoder>(new CudaVisionEncoder(std::move(impl)));
}

size_t CudaVisionEncoder::device_bytes() const {
  size_t bytes =
      impl_->weights.bytes() + impl_->activations.bytes() + impl_->blas->workspace_bytes();
  for (const auto& b : impl_->lane_blas) bytes += b->workspace_bytes();
  return bytes;
}

void CudaVisionEncoder::set_profiling(bool on) {
  if (!on) {
    impl_->timer.reset();
    return;
  }
  if (impl_->timer) return;
  auto timer = cuda::EventTimer::create();
  if (timer.ok()) impl_->timer = std::make_unique<cuda::EventTimer>(std::move(*timer));
}

#else  // !VILA_WITH_CUDA

StatusOr<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::create(const VisionEncoder&,
                                                                       const CudaVisionOptions&) {
  return unimplemented("CudaVisionEncoder: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
StatusOr<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::create_random(const VisionGeometry&,
                                                                              DType, uint64_t,
                                                                              CudaVisionOptions) {
  return unimplemented("CudaVisionEncoder: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
size_t CudaVisionEncoder::device_bytes() const { return 0; }
void CudaVisionEncoder::set_profiling(bool) {}

#endif  // VILA_WITH_CUDA

CudaVisionEncoder::CudaVisionEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaVisionEncoder::~CudaVisionEncoder() = default;

int64_t CudaVisionEncoder::llm_hidden() const { return impl_->geo.out_channels; }
int64_t CudaVisionEncoder::image_size() const { return impl_->geo.tower.image_size; }
int64_t CudaVisionEncoder::tokens_per_tile() const {
  return impl_->geo.tokens_out(impl_->geo.tokens);
}
int64_t CudaVisionEncoder::tower_tokens() const { return impl_->geo.tokens; }
const VisionConfig& CudaVisionEncoder::config() const { return impl_->geo.vision; }
const SiglipConfig& CudaVisionEncoder::tower_config() const { return impl_->geo.tower; }
DType CudaVisionEncoder::compute_dtype() const { return impl_->options.compute; }
const VisionTimings& CudaVisionEncoder::timings() const { return impl_->timings; }
void CudaVisionEncoder::reset_timings() {
  impl_->timings = {};
  impl_->stage_times.clear();
}
const std::vector<VisionStageTime>& CudaVisionEncoder::stage_times() const {
  return impl_->stage_times;
}
double CudaVisionEncoder::last_flops() const { return impl_->flops; }
double CudaVisionEncoder::last_upload_ms() const { return impl_->upload_ms; }
double CudaVisionEncoder::last_download_ms() const { return impl_->download_ms; }

}  // namespace vila
