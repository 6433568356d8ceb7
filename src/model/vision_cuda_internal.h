// Internals of CudaVisionEncoder shared by its source files (vision_cuda.cpp: geometry, weights,
// create; vision_cuda_tower.cpp: activations and the SigLIP forward; vision_cuda_projector.cpp:
// S2 merge, projector, encode). Not part of the public API.
//
// Dimension legend (as model/siglip.cpp and model/vision_encoder.cpp)
//   B  tiles in the batch      S  tile size (pixels)    p  patch size     P  patches = (S/p)²
//   T  rows = B*P              C  SigLIP hidden         Hh heads, D = C / Hh head dim
//   F  MLP intermediate        Kp im2col columns 3*p*p, padded to Kpad (a multiple of 8)
//   L  tokens after feature selection (P or P-1)        K  S2 scales      H  LLM hidden
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/projector.h"
#include "model/vision_cuda.h"

#ifdef VILA_WITH_CUDA
#include "backend/cuda/ceilings.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#endif

namespace vila {
namespace vision_cuda {

constexpr int64_t kPatchColumnAlign = 8;  // 16-byte rows of 16-bit GEMM inputs
constexpr int64_t kMaxScales = 8;         // = cuda::kMaxS2Scales
constexpr int64_t kMinLaneTiles = 4;      // per lane of the tower; fewer tiles stay on one stream
constexpr int kMaxTowerStreams = 4;

struct StageGeom {
  ProjectorStageKind kind = ProjectorStageKind::kGelu;
  int64_t factor = 0, in_dim = 0, out_dim = 0;
};

// Exact integer square root, or -1.
int64_t exact_sqrt(int64_t n);

// Everything the forward needs to know about shapes, from a loaded CPU encoder or a geometry.
struct Geometry {
  SiglipConfig tower;
  VisionConfig vision;
  int64_t layers_run = 0;
  int64_t patches = 0, tokens = 0, first_token = 0;  // P, L, P - L
  int64_t patch_k = 0, patch_k_pad = 0;              // Kp, Kpad
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

// Validates one media item's tiles against the geometry (what encode checks) and returns the
// tokens encode gives for it.
StatusOr<int64_t> check_tiles(const Geometry& g, const ImageTiles& tiles);

#ifdef VILA_WITH_CUDA

constexpr size_t kAlign = 256;
inline size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte offsets into the weight allocation, then device pointers.
struct LinearSlot {
  size_t weight = 0, bias = 0;  // (n, k) compute dtype, (n) fp32
  int64_t n = 0, k = 0;
  // (n) of the compute dtype: the bias rounded to it, for the GEMMs with a 16-bit output (qkv,
  // fc1), which take it in cuBLASLt's BIAS / GELU_BIAS epilogue (DeviceLinearWeight::bias16).
  // Released checkpoints store bf16 biases, so under bf16 the rounding is exact. 0: none.
  size_t bias16 = 0;
};
struct LayerSlots {
  size_t ln1_w = 0, ln1_b = 0, ln2_w = 0, ln2_b = 0;  // (C) fp32
  LinearSlot qkv, o, fc1, fc2;                        // qkv: (3C, C) rows q | k | v
};
struct WeightLayout {
  LinearSlot patch;  // (C, Kpad)
  size_t pos = 0;    // (P, C) fp32
  std::vector<LayerSlots> layers;
  std::vector<LinearSlot> stages;  // LayerNorm: weight/bias fp32 (in the two offsets); Linear
  size_t total = 0;
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

#endif  // VILA_WITH_CUDA

}  // namespace vision_cuda

#ifdef VILA_WITH_CUDA

struct CudaVisionEncoder::Impl {
  vision_cuda::Geometry geo;
  CudaVisionOptions options;
  VisionTimings timings;
  double flops = 0, upload_ms = 0, download_ms = 0;
  std::vector<VisionStageTime> stage_times;
  std::unique_ptr<cuda::EventTimer> timer;                    // non-null while profiling
  std::unique_ptr<cuda::EventTimer> whole_timer, tail_timer;  // encode: tower + projector split
  cuda::Stream stream;
  std::unique_ptr<cuda::Blas> blas;
  // The tower's extra lanes (run_tower): a stream and a cuBLASLt handle + workspace each; empty
  // when the tower runs on one stream.
  std::vector<cuda::Stream> lane_streams;
  std::vector<std::unique_ptr<cuda::Blas>> lane_blas;
  int64_t lanes_tuned_for = -1;  // the tile count whose lane GEMM shapes are planned and tuned
  cuda::DeviceBuffer weights;    // every parameter, one allocation
  vision_cuda::WeightLayout layout;
  cuda::DeviceLinearWeight patch;
  const float* pos = nullptr;  // (P, C)
  std::vector<vision_cuda::DeviceLayer> layers;
  std::vector<vision_cuda::DeviceStage> stages;

  // Activations for `capacity` tiles, one allocation. The tower scratch and the projector scratch
  // share one region: after the tower only x (the features) is live.
  cuda::DeviceBuffer activations;
  int64_t capacity = 0;
  cuda::PinnedBuffer staging;  // (B, 3, S, S) compute-dtype pixels on their way up (upload_pixels)
  void* pixels = nullptr;      // (B, 3, S, S) compute dtype
  float* x = nullptr;          // (T, C) fp32: the embeddings, then the features
  void* xs = nullptr;          // (T, C) 16-bit residual stream (the reference's dtype)
  void* x_mid = nullptr;       // (T, C) 16-bit stream between a layer's attention and MLP blocks
  void* cols = nullptr;        // (T, Kpad) 16-bit im2col
  void* xn = nullptr;          // (T, C) 16-bit LayerNorm out
  void* qkv = nullptr;         // (T, 3C) 16-bit
  void* attn = nullptr;        // (T, C) 16-bit
  void* mlp = nullptr;         // (T, F) 16-bit
  float* mlp32 = nullptr;      // (T, F) fp32 fc1 out before an erf GELU (hidden_act "gelu" only)
  float* blocks = nullptr;     // (B, max(L, S2C), K*C) S2 blocks / repeated / compacted features
  float* pa = nullptr;         // projector ping-pong fp32, (B, max stage tokens x width)
  float* pb = nullptr;
  void* p16 = nullptr;  // projector 16-bit GEMM input, same size

  void* s() const { return stream.handle(); }
  // Stage profiling: begin() records an event, end(name) records the second, waits and adds the
  // elapsed device time to `name`. No-ops when profiling is off.
  Status begin() { return timer ? timer->start(s()) : ok_status(); }
  Status end(const std::string& name) {
    if (!timer) return ok_status();
    VILA_ASSIGN_OR_RETURN(const double ms, timer->stop_ms(s()));
    add_stage(name, ms);
    return ok_status();
  }
  void add_stage(const std::string& name, double ms) {
    for (VisionStageTime& st : stage_times) {
      if (st.name == name) {
        st.ms += ms;
        ++st.calls;
        return;
      }
    }
    stage_times.push_back({name, ms, 1});
  }
  DType dt() const { return options.compute; }

  Status bind(DType dtype);
  Status ensure_capacity(int64_t n_tiles);
  // out (rows, N) = in · Wᵀ + b (+ residual, a (rows, N) fp32 buffer other than out: cuBLASLt's
  // C operand), GELU (tanh) after the bias when gelu_tanh. model_k: the K counted in flops (the
  // patch GEMM's K is padded).
  Status gemm(void* out, DType out_dtype, const void* in, int64_t rows,
              const cuda::DeviceLinearWeight& w, const void* residual, bool gelu_tanh,
              int64_t model_k = 0) {
    return gemm_on(main_lane(0), out, out_dtype, in, rows, w, residual, gelu_tanh, model_k);
  }
  // Tiles of an item on one stream: rows [row0, row0 + tiles * P) of every tower buffer (the
  // rows of different tiles never mix before the features, so two lanes share the buffers).
  struct Lane {
    void* stream = nullptr;
    cuda::Blas* blas = nullptr;
    int64_t row0 = 0;
    int64_t tiles = 0;
  };
  Lane main_lane(int64_t tiles) const { return {s(), blas.get(), 0, tiles}; }
  Status gemm_on(const Lane& lane, void* out, DType out_dtype, const void* in, int64_t rows,
                 const cuda::DeviceLinearWeight& w, const void* residual, bool gelu_tanh,
                 int64_t model_k = 0) {
    cuda::LinearArgs a;
    a.out = out;
    a.out_dtype = out_dtype;
    a.in = in;
    a.rows = rows;
    a.residual = residual;
    a.gelu_tanh = gelu_tanh;
    flops += 2.0 * static_cast<double>(rows) * static_cast<double>(w.out_features) *
             static_cast<double>(model_k > 0 ? model_k : w.in_features);
    return cuda::linear(*lane.blas, a, w, lane.stream);
  }
  Status upload_pixels(const float* host_tiles, int64_t n_tiles);  // into pixels, async
  Status run_tower(const float* host_tiles, int64_t n_tiles);
  Status encoder_layer(const vision_cuda::DeviceLayer& w, const Lane& lane);
  // Projector stages [first_stage, end) on `items` items of `tokens` fp32 tokens of `width`
  // channels (token t of item n is row n * item_stride + first_token + t of in). Returns the
  // compact fp32 output (items, tokens', H) in pa or pb.
  StatusOr<const float*> run_projector(const float* in, int64_t items, int64_t item_stride,
                                       int64_t first_token, int64_t tokens, int64_t width,
                                       size_t first_stage);
  // The whole encode of one media item up to projected rows on the device (see encode_device);
  // the stream is synchronised at the end.
  StatusOr<CudaVisionEncoder::DeviceRows> encode_rows(const ImageTiles& tiles);
};

#else  // !VILA_WITH_CUDA

struct CudaVisionEncoder::Impl {
  vision_cuda::Geometry geo;
  CudaVisionOptions options;
  VisionTimings timings;
  double flops = 0, upload_ms = 0, download_ms = 0;
  std::vector<VisionStageTime> stage_times;
};

#endif  // VILA_WITH_CUDA

}  // namespace vila
