// CudaVisionEncoder: host code driving the launchers of backend/cuda (no CUDA headers here).
//
// Dimension legend (as model/siglip.cpp and model/vision_encoder.cpp)
//   B  tiles in the batch      S  tile size (pixels)    p  patch size     P  patches = (S/p)²
//   T  rows = B*P              C  SigLIP hidden         Hh heads, D = C / Hh head dim
//   F  MLP intermediate        Kp im2col columns 3*p*p, padded to Kpad (a multiple of 8)
//   Cb LayerNorm-out row stride: C values, then 1, then zeros up to a multiple of 8 (the qkv and
//      fc1 weights are (N, Cb) = [W | b | 0]: their 16-bit outputs cannot take cuBLASLt's fp32
//      bias epilogue, so the bias rides in the GEMM, exact in fp32 accumulation of b * 1)
//   L  tokens after feature selection (P or P-1)        K  S2 scales      H  LLM hidden
#include "model/vision_cuda.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <regex>
#include <string>
#include <utility>

#include "model/s2_merge.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/embedding.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/layer_norm.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/vision_ops.h"
#endif

namespace vila {

namespace {

constexpr int64_t kPatchColumnAlign = 8;  // 16-byte rows of 16-bit GEMM inputs
constexpr int64_t kMaxScales = 8;         // = cuda::kMaxS2Scales

struct StageGeom {
  ProjectorStageKind kind = ProjectorStageKind::kGelu;
  int64_t factor = 0, in_dim = 0, out_dim = 0;
};

int64_t exact_sqrt(int64_t n) {
  if (n < 0) return -1;
  auto s = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  while (s * s > n) --s;
  while ((s + 1) * (s + 1) <= n) ++s;
  return s * s == n ? s : -1;
}

// Everything the forward needs to know about shapes, from a loaded CPU encoder or a geometry.
struct Geometry {
  SiglipConfig tower;
  VisionConfig vision;
  int64_t layers_run = 0;
  int64_t patches = 0, tokens = 0, first_token = 0;  // P, L, P - L
  int64_t patch_k = 0, patch_k_pad = 0;              // Kp, Kpad
  int64_t ln_stride = 0;  // Cb: LayerNorm-out row = C values, a 1 (folded bias), zeros
  std::vector<StageGeom> stages;
  int64_t out_channels = 0;  // H

  int64_t tokens_out(int64_t tokens_in) const {  // Projector::tokens_out
    int64_t t = tokens_in;
    for (const StageGeom& st : stages) {
      if (st.kind != ProjectorStageKind::kSpatialToChannel) continue;
      const int64_t s = exact_sqrt(t);
      if (s < 0) return -1;
      const int64_t g = (s + st.factor - 1) / st.factor;
      t = g * g;
    }
    return t;
  }
  int64_t n_scales() const {
    return vision.dynamic_s2 ? static_cast<int64_t>(vision.s2_scales.size()) : 1;
  }
};

[[maybe_unused]] Status finish_geometry(Geometry& g) {
  const SiglipConfig& c = g.tower;
  g.patches = c.n_patches();
  g.tokens = g.vision.select_feature == "patch" ? g.patches - 1 : g.patches;
  g.first_token = g.patches - g.tokens;
  g.patch_k = c.n_channels * c.patch_size * c.patch_size;
  g.patch_k_pad = (g.patch_k + kPatchColumnAlign - 1) / kPatchColumnAlign * kPatchColumnAlign;
  g.ln_stride = (c.hidden + 1 + kPatchColumnAlign - 1) / kPatchColumnAlign * kPatchColumnAlign;
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
  using K = ProjectorStageKind;
  std::vector<std::pair<K, int64_t>> specs;  // (kind, k or out features)
  static const std::regex mlp_gelu(R"(^mlp(\d+)x_gelu$)");
  std::smatch m;
  if (type == "mlp_downsample" || type == "mlp_downsample_2x2_fix") {
    specs = {{K::kSpatialToChannel, 2},
             {K::kLayerNorm, 0},
             {K::kLinear, H},
             {K::kGelu, 0},
             {K::kLinear, H}};
  } else if (type == "mlp_downsample_3x3_fix") {
    specs = {{K::kSpatialToChannel, 3}, {K::kLayerNorm, 0}, {K::kLinear, 3 * C}, {K::kGelu, 0},
             {K::kLayerNorm, 0},        {K::kLinear, H},    {K::kGelu, 0},       {K::kLinear, H}};
  } else if (type == "linear") {
    specs = {{K::kLinear, H}};
  } else if (std::regex_match(type, m, mlp_gelu) && std::stoi(m[1].str()) >= 1) {
    specs = {{K::kLinear, H}};
    for (int i = 1; i < std::stoi(m[1].str()); ++i) {
      specs.push_back({K::kGelu, 0});
      specs.push_back({K::kLinear, H});
    }
  } else if (type != "identity") {
    return unimplemented("CudaVisionEncoder::create_random: projector type '" + type +
                         "' (supported: mlp_downsample, mlp_downsample_2x2_fix, "
                         "mlp_downsample_3x3_fix, linear, mlp<N>x_gelu, identity)");
  }
  std::vector<StageGeom> stages;
  int64_t width = C;
  for (const auto& [kind, arg] : specs) {
    StageGeom st{kind, 0, width, width};
    if (kind == K::kSpatialToChannel) {
      st.factor = arg;
      st.out_dim = width * arg * arg;
    } else if (kind == K::kLinear) {
      st.out_dim = arg;
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

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Random-weight ranges (create_random).
constexpr float kRandomNormLo = 0.9f, kRandomNormHi = 1.1f;  // LayerNorm weights
constexpr float kRandomBias = 0.02f;                         // biases, LayerNorm biases, pos_emb
constexpr uint64_t kSeedStride = 0x9E3779B97F4A7C15ull;

// Byte offsets into the weight allocation, then device pointers.
struct LinearSlot {
  size_t weight = 0, bias = 0;  // (n, k) compute dtype, (n) fp32
  int64_t n = 0, k = 0;
  bool folded_bias = false;  // weight (n, Cb) = [W | b | 0], no separate bias
};
struct LayerSlots {
  size_t ln1_w = 0, ln1_b = 0, ln2_w = 0, ln2_b = 0;  // (C) fp32
  LinearSlot qkv, o, fc1, fc2;  // qkv: (3C, Cb) rows q | k | v; fc1 (F, Cb) (folded biases)
};
struct WeightLayout {
  LinearSlot patch;  // (C, Kpad)
  size_t pos = 0;    // (P, C) fp32
  std::vector<LayerSlots> layers;
  std::vector<LinearSlot> stages;  // LayerNorm: weight/bias fp32 (in the two offsets); Linear
  size_t total = 0;
};

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
    return LinearSlot{weight, take(DType::kF32, n), n, k, false};
  };
  auto folded = [&](int64_t n) {
    return LinearSlot{take(dt, n * g.ln_stride), 0, n, g.ln_stride, true};
  };
  const int64_t C = g.tower.hidden, F = g.tower.intermediate;
  w.patch = linear(C, g.patch_k_pad);
  w.pos = take(DType::kF32, g.patches * C);
  for (int64_t l = 0; l < g.layers_run; ++l) {
    LayerSlots& ls = w.layers.emplace_back();
    ls.ln1_w = take(DType::kF32, C);
    ls.ln1_b = take(DType::kF32, C);
    ls.qkv = folded(3 * C);
    ls.o = linear(C, C);
    ls.ln2_w = take(DType::kF32, C);
    ls.ln2_b = take(DType::kF32, C);
    ls.fc1 = folded(F);
    ls.fc2 = linear(C, F);
  }
  for (const StageGeom& st : g.stages) {
    LinearSlot slot;
    if (st.kind == ProjectorStageKind::kLayerNorm) {
      slot = {take(DType::kF32, st.in_dim), take(DType::kF32, st.in_dim), st.in_dim, 1, false};
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
  // weight (n, k) and bias (n) -> (n, stride) = [W | b | 0] in target.
  Status put_folded(size_t offset, const TensorView& weight, const TensorView& bias, DType target,
                    int64_t stride) {
    const int64_t n = weight.dim(0), k = weight.dim(1);
    std::vector<float> w(static_cast<size_t>(n * k)), b(static_cast<size_t>(n), 0.0f);
    VILA_RETURN_IF_ERROR(convert_to_f32(weight.dtype, weight.data, w.data(), n * k));
    if (!bias.empty()) VILA_RETURN_IF_ERROR(convert_to_f32(bias.dtype, bias.data, b.data(), n));
    std::vector<float> rows(static_cast<size_t>(n * stride), 0.0f);
    for (int64_t r = 0; r < n; ++r) {
      std::copy(w.begin() + r * k, w.begin() + (r + 1) * k, rows.begin() + r * stride);
      rows[static_cast<size_t>(r * stride + k)] = b[static_cast<size_t>(r)];
    }
    return put(offset, TensorView(rows.data(), DType::kF32, {n, stride}), target);
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

struct DeviceLayer {
  const float *ln1_w = nullptr, *ln1_b = nullptr, *ln2_w = nullptr, *ln2_b = nullptr;  // (C)
  cuda::DeviceLinearWeight qkv, o, fc1, fc2;
};
struct DeviceStage {
  StageGeom geom;
  const float *norm_w = nullptr, *norm_b = nullptr;  // kLayerNorm: (in_dim)
  cuda::DeviceLinearWeight linear;                   // kLinear: (out_dim, in_dim) + bias
};

}  // namespace

struct CudaVisionEncoder::Impl {
  Geometry geo;
  CudaVisionOptions options;
  VisionTimings timings;
  double flops = 0, upload_ms = 0;
  cuda::Stream stream;
  std::unique_ptr<cuda::Blas> blas;
  cuda::DeviceBuffer weights;  // every parameter, one allocation
  WeightLayout layout;
  cuda::DeviceLinearWeight patch;
  const float* pos = nullptr;  // (P, C)
  std::vector<DeviceLayer> layers;
  std::vector<DeviceStage> stages;

  // Activations for `capacity` tiles, one allocation. The tower scratch and the projector scratch
  // share one region: after the tower only x (the features) is live.
  cuda::DeviceBuffer activations;
  int64_t capacity = 0;
  float* pixels = nullptr;  // (B, 3, S, S)
  float* x = nullptr;       // (T, C) residual stream, then the features
  void* cols = nullptr;     // (T, Kpad) 16-bit im2col
  void* xn = nullptr;       // (T, Cb) 16-bit LayerNorm out, then 1, then zeros
  void* qkv = nullptr;      // (T, 3C) 16-bit
  void* attn = nullptr;     // (T, C) 16-bit
  void* mlp = nullptr;      // (T, F) 16-bit
  float* mlp32 = nullptr;   // (T, F) fp32 fc1 out before an erf GELU (hidden_act "gelu" only)
  float* blocks = nullptr;  // (B, L, K*C) S2 blocks / repeated / compacted features
  float* pa = nullptr;      // projector ping-pong fp32, (B, max stage tokens x width)
  float* pb = nullptr;
  void* p16 = nullptr;  // projector 16-bit GEMM input, same size

  void* s() const { return stream.handle(); }
  DType dt() const { return options.compute; }

  Status bind(DType dtype);
  Status ensure_capacity(int64_t n_tiles);
  Status gemm(void* out, DType out_dtype, const void* in, int64_t rows,
              const cuda::DeviceLinearWeight& w, bool accumulate, bool gelu_tanh,
              int64_t model_k = 0) {
    cuda::LinearArgs a;
    a.out = out;
    a.out_dtype = out_dtype;
    a.in = in;
    a.rows = rows;
    a.accumulate = accumulate;
    a.gelu_tanh = gelu_tanh;
    flops += 2.0 * static_cast<double>(rows) * static_cast<double>(w.out_features) *
             static_cast<double>(model_k > 0 ? model_k : w.in_features);
    return cuda::linear(*blas, a, w, s());
  }
  Status run_tower(const float* host_tiles, int64_t n_tiles);
  Status encoder_layer(const DeviceLayer& w, int64_t n_tiles);
  StatusOr<const float*> run_projector(const float* in, int64_t items, int64_t item_stride,
                                       int64_t first_token, int64_t tokens);
};

// Resolves the layout's offsets into device pointers.
Status CudaVisionEncoder::Impl::bind(DType dtype) {
  char* base = weights.as<char>();
  auto f32_at = [&](size_t offset) { return reinterpret_cast<const float*>(base + offset); };
  auto resolve = [&](const LinearSlot& slot) {
    cuda::DeviceLinearWeight d;
    d.weight = base + slot.weight;
    d.bias = slot.folded_bias ? nullptr : f32_at(slot.bias);
    d.dtype = dtype;
    d.out_features = slot.n;
    d.in_features = slot.k;
    return d;
  };
  patch = resolve(layout.patch);
  pos = f32_at(layout.pos);
  for (const LayerSlots& ls : layout.layers) {
    layers.push_back({f32_at(ls.ln1_w), f32_at(ls.ln1_b), f32_at(ls.ln2_w), f32_at(ls.ln2_b),
                      resolve(ls.qkv), resolve(ls.o), resolve(ls.fc1), resolve(ls.fc2)});
  }
  for (size_t i = 0; i < geo.stages.size(); ++i) {
    DeviceStage& ds = stages.emplace_back();
    ds.geom = geo.stages[i];
    if (ds.geom.kind == ProjectorStageKind::kLayerNorm) {
      ds.norm_w = f32_at(layout.stages[i].weight);
      ds.norm_b = f32_at(layout.stages[i].bias);
    } else if (ds.geom.kind == ProjectorStageKind::kLinear) {
      ds.linear = resolve(layout.stages[i]);
    }
  }
  return ok_status();
}

Status CudaVisionEncoder::Impl::ensure_capacity(int64_t n_tiles) {
  if (n_tiles <= capacity) return ok_status();
  const SiglipConfig& c = geo.tower;
  const int64_t B = n_tiles, T = B * geo.patches, C = c.hidden, F = c.intermediate;
  const int64_t es = dtype_bytes(dt(), 1);
  // Widest projector activation per item (tokens x width), input included.
  int64_t widest = geo.tokens * geo.vision.mm_hidden, t = geo.tokens;
  for (const StageGeom& st : geo.stages) {
    if (st.kind == ProjectorStageKind::kSpatialToChannel) {
      const int64_t g = (exact_sqrt(t) + st.factor - 1) / st.factor;
      t = g * g;
    }
    widest = std::max(widest, t * std::max(st.in_dim, st.out_dim));
  }
  const bool erf_mlp = c.act == cpu::GeluApprox::kErf;
  const std::vector<std::pair<void**, int64_t>> fixed = {
      {reinterpret_cast<void**>(&pixels), B * c.n_channels * c.image_size * c.image_size * 4},
      {reinterpret_cast<void**>(&x), T * C * 4}};
  const std::vector<std::pair<void**, int64_t>> tower = {
      {&cols, T * geo.patch_k_pad * es},
      {&xn, T * geo.ln_stride * es},
      {&qkv, T * 3 * C * es},
      {&attn, T * C * es},
      {&mlp, T * F * es},
      {reinterpret_cast<void**>(&mlp32), erf_mlp ? T * F * 4 : 0}};
  const std::vector<std::pair<void**, int64_t>> projector = {
      {reinterpret_cast<void**>(&blocks), B * geo.tokens * geo.vision.mm_hidden * 4},
      {reinterpret_cast<void**>(&pa), B * widest * 4},
      {reinterpret_cast<void**>(&pb), B * widest * 4},
      {&p16, B * widest * es}};
  auto bytes_of = [](const std::vector<std::pair<void**, int64_t>>& list) {
    size_t total = 0;
    for (const auto& [ptr, bytes] : list) total += align_up(static_cast<size_t>(bytes));
    return total;
  };
  const size_t region = std::max(bytes_of(tower), bytes_of(projector));
  activations = cuda::DeviceBuffer();  // free the old one first
  capacity = 0;
  VILA_ASSIGN_OR_RETURN(activations, cuda::DeviceBuffer::create(bytes_of(fixed) + region));
  auto carve = [](char* at, const std::vector<std::pair<void**, int64_t>>& list) {
    for (const auto& [ptr, bytes] : list) {
      *ptr = bytes > 0 ? at : nullptr;
      at += align_up(static_cast<size_t>(bytes));
    }
    return at;
  };
  char* shared = carve(activations.as<char>(), fixed);
  carve(shared, tower);
  carve(shared, projector);
  capacity = n_tiles;
  return ok_status();
}

// Upload + embeddings + the layers that run: x (B*P, C) holds hidden_states[select_layer].
Status CudaVisionEncoder::Impl::run_tower(const float* host_tiles, int64_t n_tiles) {
  const SiglipConfig& c = geo.tower;
  const int64_t B = n_tiles, S = c.image_size, rows = B * geo.patches;
  VILA_RETURN_IF_ERROR(ensure_capacity(B));
  const auto t0 = std::chrono::steady_clock::now();
  VILA_RETURN_IF_ERROR(cuda::copy_to_device(  // pageable: returns once the host copy is done
      pixels, host_tiles, static_cast<size_t>(B * c.n_channels * S * S) * 4, s()));
  upload_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  VILA_RETURN_IF_ERROR(cuda::im2col_patches(cols, dt(), geo.patch_k_pad, pixels, B, c.n_channels, S,
                                            c.patch_size, s()));  // (T, Kpad)
  VILA_RETURN_IF_ERROR(gemm(x, DType::kF32, cols, rows, patch, false, false, geo.patch_k));
  VILA_RETURN_IF_ERROR(cuda::add_position_embeddings(x, pos, B, geo.patches, c.hidden, s()));
  VILA_RETURN_IF_ERROR(cuda::set_bias_columns(xn, dt(), rows, geo.ln_stride, c.hidden, s()));
  for (const DeviceLayer& w : layers) VILA_RETURN_IF_ERROR(encoder_layer(w, B));
  return ok_status();
}

Status CudaVisionEncoder::Impl::encoder_layer(const DeviceLayer& w, int64_t n_tiles) {
  const SiglipConfig& c = geo.tower;
  const int64_t P = geo.patches, rows = n_tiles * P, C = c.hidden, F = c.intermediate;
  const int64_t Hh = c.n_heads, D = c.head_dim(), es = dtype_bytes(dt(), 1);
  const auto eps = static_cast<float>(c.ln_eps);

  // Attention block: x += o(attention(qkv(LN1(x)))).
  const int64_t Cb = geo.ln_stride;
  VILA_RETURN_IF_ERROR(cuda::layer_norm(xn, dt(), Cb, x, w.ln1_w, w.ln1_b, rows, C, eps, s()));
  VILA_RETURN_IF_ERROR(gemm(qkv, dt(), xn, rows, w.qkv, false, false, C));  // (T, 3C): q | k | v
  cuda::DenseAttentionArgs a;
  a.out = attn;  // (T, C)
  a.out_row_stride = C;
  a.q = qkv;
  a.k = static_cast<const char*>(qkv) + C * es;
  a.v = static_cast<const char*>(qkv) + 2 * C * es;
  a.q_row_stride = a.k_row_stride = a.v_row_stride = 3 * C;
  a.batch = static_cast<int>(n_tiles);
  a.seq = static_cast<int>(P);
  a.n_head = a.n_head_kv = static_cast<int>(Hh);
  a.head_dim = static_cast<int>(D);
  a.causal = false;
  a.scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5));
  a.dtype = dt();
  VILA_RETURN_IF_ERROR(cuda::flash_attention_dense(a, s()));
  flops +=
      4.0 * static_cast<double>(n_tiles) * static_cast<double>(P * P) * static_cast<double>(Hh * D);
  VILA_RETURN_IF_ERROR(gemm(x, DType::kF32, attn, rows, w.o, true, false));  // x += o(attn)

  // MLP block: x += fc2(gelu(fc1(LN2(x)))).
  VILA_RETURN_IF_ERROR(cuda::layer_norm(xn, dt(), Cb, x, w.ln2_w, w.ln2_b, rows, C, eps, s()));
  if (c.act == cpu::GeluApprox::kTanh) {
    VILA_RETURN_IF_ERROR(gemm(mlp, dt(), xn, rows, w.fc1, false, true, C));  // (T, F) + GELU
  } else {  // erf GELU after an fp32 GEMM (the bias is already in)
    VILA_RETURN_IF_ERROR(gemm(mlp32, DType::kF32, xn, rows, w.fc1, false, false, C));
    VILA_RETURN_IF_ERROR(cuda::gelu_bias(mlp, dt(), mlp32, nullptr, rows, F, false, s()));
  }
  return gemm(x, DType::kF32, mlp, rows, w.fc2, true, false);  // x += fc2(h)
}

// The projector stages on `items` items of `tokens` fp32 tokens (item n's token t is row
// n * item_stride + first_token + t of in). Activations alternate between pa / pb (fp32) and p16
// (the 16-bit input of the next GEMM). Returns the compact fp32 output (items, tokens', H).
StatusOr<const float*> CudaVisionEncoder::Impl::run_projector(const float* in, int64_t items,
                                                              int64_t item_stride,
                                                              int64_t first_token, int64_t tokens) {
  using K = ProjectorStageKind;
  const float* cur = in;  // fp32 activation, valid while !is16
  bool is16 = false;      // the activation is in p16
  int64_t stride = item_stride, first = first_token, t = tokens, w = geo.vision.mm_hidden;
  auto free_f32 = [&]() { return cur == pa ? pb : pa; };
  auto compact = [&]() -> Status {  // cur becomes a compact fp32 (items*t, w)
    if (stride == t && first == 0) return ok_status();
    float* out = free_f32();
    VILA_RETURN_IF_ERROR(
        cuda::gather_tokens(out, DType::kF32, cur, items, stride, first, t, w, 1, s()));
    cur = out;
    stride = t;
    first = 0;
    return ok_status();
  };
  const size_t n = stages.size();
  for (size_t i = 0; i < n; ++i) {
    const DeviceStage& st = stages[i];
    const bool next_linear = i + 1 < n && stages[i + 1].geom.kind == K::kLinear;
    const int64_t rows = items * t;
    if (is16 && st.geom.kind != K::kLinear) {
      return internal_error("projector: a 16-bit activation before a non-linear stage");
    }
    switch (st.geom.kind) {
      case K::kSpatialToChannel: {  // (s*s, w) -> (g*g, k*k*w)
        const int64_t side = exact_sqrt(t), k = st.geom.factor, g = (side + k - 1) / k;
        void* out = next_linear ? p16 : static_cast<void*>(free_f32());
        VILA_RETURN_IF_ERROR(cuda::spatial_to_channel(out, next_linear ? dt() : DType::kF32, cur,
                                                      items, stride, first, side, w, k, s()));
        if (!next_linear) cur = static_cast<float*>(out);
        is16 = next_linear;
        t = g * g;
        w = st.geom.out_dim;  // k * k * w
        stride = t;
        first = 0;
        break;
      }
      case K::kLayerNorm: {  // (rows, w), LayerNorm eps 1e-5 (nn.LayerNorm)
        constexpr float kProjectorLnEps = 1e-5f;
        VILA_RETURN_IF_ERROR(compact());
        float* out32 = free_f32();
        void* out = next_linear ? p16 : static_cast<void*>(out32);
        VILA_RETURN_IF_ERROR(cuda::layer_norm(out, next_linear ? dt() : DType::kF32, 0, cur,
                                              st.norm_w, st.norm_b, rows, w, kProjectorLnEps, s()));
        if (!next_linear) cur = out32;
        is16 = next_linear;
        break;
      }
      case K::kLinear: {  // (rows, w) -> (rows, out_dim) fp32, bias or bias + erf GELU
        if (!is16) {
          VILA_RETURN_IF_ERROR(
              cuda::gather_tokens(p16, dt(), cur, items, stride, first, t, w, 1, s()));
          stride = t;
          first = 0;
        }
        float* out = free_f32();
        const bool gelu_next = i + 1 < n && stages[i + 1].geom.kind == K::kGelu;
        const int64_t out_dim = st.geom.out_dim;
        if (!gelu_next) {
          VILA_RETURN_IF_ERROR(gemm(out, DType::kF32, p16, rows, st.linear, false, false));
          cur = out;
          is16 = false;
        } else {
          cuda::DeviceLinearWeight no_bias = st.linear;
          no_bias.bias = nullptr;
          VILA_RETURN_IF_ERROR(gemm(out, DType::kF32, p16, rows, no_bias, false, false));
          const bool linear_after = i + 2 < n && stages[i + 2].geom.kind == K::kLinear;
          void* act = linear_after ? p16 : static_cast<void*>(out);  // GEMM has read p16
          VILA_RETURN_IF_ERROR(cuda::gelu_bias(act, linear_after ? dt() : DType::kF32, out,
                                               st.linear.bias, rows, out_dim, false, s()));
          cur = out;
          is16 = linear_after;
          ++i;  // the GELU stage is done
        }
        w = out_dim;
        break;
      }
      case K::kGelu: {  // a GELU not after a Linear: erf, no bias
        VILA_RETURN_IF_ERROR(compact());
        float* out = free_f32();
        VILA_RETURN_IF_ERROR(cuda::gelu_bias(out, DType::kF32, cur, nullptr, rows, w, false, s()));
        cur = out;
        break;
      }
    }
  }
  VILA_RETURN_IF_ERROR(compact());  // identity projector: the features themselves
  return cur;
}

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
  const size_t qkv_part = static_cast<size_t>(dtype_bytes(dt, C * g.ln_stride));
  for (size_t l = 0; l < lay.layers.size(); ++l) {
    const SiglipLayerWeights& lw = sw.layers[l];
    const LayerSlots& ls = lay.layers[l];
    VILA_RETURN_IF_ERROR(up.put(ls.ln1_w, lw.ln1_w, DType::kF32));
    VILA_RETURN_IF_ERROR(up.put(ls.ln1_b, lw.ln1_b, DType::kF32));
    const cpu::LinearWeight* qkv[] = {&lw.q, &lw.k, &lw.v};
    for (size_t part = 0; part < 3; ++part) {
      VILA_RETURN_IF_ERROR(up.put_folded(ls.qkv.weight + part * qkv_part, qkv[part]->weight,
                                         qkv[part]->bias, dt, g.ln_stride));
    }
    const std::pair<const LinearSlot*, const cpu::LinearWeight*> linears[] = {{&ls.o, &lw.o},
                                                                              {&ls.fc2, &lw.fc2}};
    for (const auto& [slot, cw] : linears) {
      VILA_RETURN_IF_ERROR(up.put(slot->weight, cw->weight, dt));
      VILA_RETURN_IF_ERROR(up.put(slot->bias, cw->bias, DType::kF32));
    }
    VILA_RETURN_IF_ERROR(up.put_folded(ls.fc1.weight, lw.fc1.weight, lw.fc1.bias, dt, g.ln_stride));
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
    if (slot.folded_bias) return ok_status();  // the bias column is random like the weights
    return fill(slot.bias, DType::kF32, slot.n, -kRandomBias, kRandomBias);
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

Status CudaVisionEncoder::tower_forward(const float* tiles, int64_t n_tiles,
                                        std::vector<float>& out) {
  Impl& m = *impl_;
  const Geometry& g = m.geo;
  if (n_tiles <= 0 || tiles == nullptr) {
    return invalid_argument("cuda vision tower_forward: need tiles and n_tiles > 0");
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(m.options.device));
  m.flops = 0;
  VILA_RETURN_IF_ERROR(m.run_tower(tiles, n_tiles));
  const int64_t C = g.tower.hidden;
  const float* src = m.x;
  if (g.first_token > 0) {  // "patch": drop token 0 of every tile
    VILA_RETURN_IF_ERROR(cuda::gather_tokens(m.blocks, DType::kF32, m.x, n_tiles, g.patches,
                                             g.first_token, g.tokens, C, 1, m.s()));
    src = m.blocks;
  }
  out.resize(static_cast<size_t>(n_tiles * g.tokens * C));
  return cuda::copy_to_host(out.data(), src, out.size() * 4, m.s());
}

StatusOr<std::vector<float>> CudaVisionEncoder::encode(const ImageTiles& tiles, int64_t* n_tokens) {
  Impl& m = *impl_;
  const Geometry& g = m.geo;
  const int64_t S = g.tower.image_size, C = g.tower.hidden, L = g.tokens, N = tiles.n_tiles;
  const int64_t H = g.out_channels, cin = g.tower.n_channels;
  if (n_tokens == nullptr) return invalid_argument("cuda vision encode: n_tokens is null");
  if (N <= 0) return invalid_argument("cuda vision encode: no tiles");
  if (tiles.size != S) {
    return invalid_argument("cuda vision encode: tiles are " + std::to_string(tiles.size) +
                            " px, the vision tower takes " + std::to_string(S));
  }
  if (static_cast<int64_t>(tiles.pixels.size()) != N * cin * S * S) {
    return invalid_argument("cuda vision encode: pixels hold " +
                            std::to_string(tiles.pixels.size()) + " floats, expected (" +
                            std::to_string(N) + ", " + std::to_string(cin) + ", " +
                            std::to_string(S) + ", " + std::to_string(S) + ")");
  }
  if ((tiles.rows > 0) != (tiles.cols > 0) || tiles.rows < 0 || tiles.cols < 0) {
    return invalid_argument("cuda vision encode: rows and cols must both be set or both be 0");
  }
  if (tiles.rows > 0 && !g.vision.dynamic_s2) {
    return invalid_argument(
        "cuda vision encode: a block grid was given but the model is not dynamic_s2");
  }
  const std::vector<int64_t>& scales = g.vision.s2_scales;
  const int64_t gside = exact_sqrt(L);
  if (tiles.rows > 0) {
    if (gside < 0) return invalid_argument("cuda vision encode: dynamic_s2 needs square tokens");
    const int64_t expected = s2_tile_count(scales, tiles.rows, tiles.cols);
    if (N != expected) {
      return invalid_argument("cuda vision encode: " + std::to_string(N) + " tiles, expected " +
                              std::to_string(expected) + " for s2_scales and a " +
                              std::to_string(tiles.rows) + "x" + std::to_string(tiles.cols) +
                              " grid");
    }
  }
  VILA_RETURN_IF_ERROR(cuda::set_device(m.options.device));
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  m.flops = 0;
  VILA_RETURN_IF_ERROR(m.run_tower(tiles.pixels.data(), N));  // x (N, P, C)
  VILA_RETURN_IF_ERROR(m.stream.synchronize());
  const auto t1 = Clock::now();

  const int64_t lp = g.tokens_out(L), K = g.n_scales();
  std::vector<float> out;
  const float* result = nullptr;
  int64_t items = N;
  if (tiles.rows > 0) {
    // Dynamic S2: blocks (rows*cols, L, K*C) -> projector -> (rows*cols, L', H) -> raster.
    cuda::S2MergeArgs a;
    a.out = m.blocks;
    a.features = m.x;
    a.item_stride = g.patches;
    a.first_token = g.first_token;
    a.g = gside;
    a.channels = C;
    a.n_scales = static_cast<int>(K);
    for (int64_t s = 0; s < K; ++s) {
      const bool last = s + 1 == K;
      a.grid_h[s] = last ? tiles.rows : scales[s] / scales[0];
      a.grid_w[s] = last ? tiles.cols : scales[s] / scales[0];
    }
    const int64_t idx =
        g.vision.s2_resize_idx < 0 ? g.vision.s2_resize_idx + K : g.vision.s2_resize_idx;
    a.out_rows = a.grid_h[idx];
    a.out_cols = a.grid_w[idx];
    items = a.out_rows * a.out_cols;
    VILA_RETURN_IF_ERROR(cuda::s2_merge_features(a, m.s()));
    VILA_ASSIGN_OR_RETURN(const float* projected, m.run_projector(m.blocks, items, L, 0, L));
    float* raster = projected == m.pa ? m.pb : m.pa;  // (rows*g', cols*g', H)
    VILA_RETURN_IF_ERROR(cuda::merge_chessboard(raster, projected, a.out_rows, a.out_cols,
                                                exact_sqrt(lp), H, m.s()));
    result = raster;
  } else if (g.vision.dynamic_s2) {
    // No grid: each tile's features repeated K times along channels ([f | f | f]).
    VILA_RETURN_IF_ERROR(cuda::gather_tokens(m.blocks, DType::kF32, m.x, N, g.patches,
                                             g.first_token, L, C, K, m.s()));
    VILA_ASSIGN_OR_RETURN(result, m.run_projector(m.blocks, N, L, 0, L));
  } else {
    VILA_ASSIGN_OR_RETURN(result, m.run_projector(m.x, N, g.patches, g.first_token, L));
  }
  out.resize(static_cast<size_t>(items * lp * H));
  VILA_RETURN_IF_ERROR(cuda::copy_to_host(out.data(), result, out.size() * 4, m.s()));
  m.timings.tower_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
  m.timings.projector_ms += std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  *n_tokens = items * lp;
  return out;
}

size_t CudaVisionEncoder::device_bytes() const {
  return impl_->weights.bytes() + impl_->activations.bytes() + impl_->blas->workspace_bytes();
}

#else  // !VILA_WITH_CUDA

struct CudaVisionEncoder::Impl {
  Geometry geo;
  CudaVisionOptions options;
  VisionTimings timings;
  double flops = 0, upload_ms = 0;
};

StatusOr<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::create(const VisionEncoder&,
                                                                       const CudaVisionOptions&) {
  return unimplemented("CudaVisionEncoder: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
StatusOr<std::unique_ptr<CudaVisionEncoder>> CudaVisionEncoder::create_random(const VisionGeometry&,
                                                                              DType, uint64_t,
                                                                              CudaVisionOptions) {
  return unimplemented("CudaVisionEncoder: vila.cpp was built without CUDA (VILA_CUDA=OFF)");
}
Status CudaVisionEncoder::tower_forward(const float*, int64_t, std::vector<float>&) {
  return unimplemented("CudaVisionEncoder: built without CUDA");
}
StatusOr<std::vector<float>> CudaVisionEncoder::encode(const ImageTiles&, int64_t*) {
  return unimplemented("CudaVisionEncoder: built without CUDA");
}
size_t CudaVisionEncoder::device_bytes() const { return 0; }

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
void CudaVisionEncoder::reset_timings() { impl_->timings = {}; }
double CudaVisionEncoder::last_flops() const { return impl_->flops; }
double CudaVisionEncoder::last_upload_ms() const { return impl_->upload_ms; }

}  // namespace vila
