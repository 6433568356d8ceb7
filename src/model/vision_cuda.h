// CudaVisionEncoder: the vision side of VisionEncoder (model/vision_encoder.h) on one CUDA GPU:
// SigLIP tower, dynamic-S2 merge, projector and chessboard merge, from preprocessed tiles to LLM
// input embeddings. Same inputs and outputs as VisionEncoder::encode / tower_forward, so a caller
// can swap the two; encode_into / encode_device skip the host allocation or the download.
//
// Dynamic S2 with a block grid runs the merge (area resize + chessboard split), the projector's
// spatial-to-channel and the final chessboard merge as ONE gather kernel: the projector after
// its spatial-to-channel is row-wise, so the rows are gathered straight into raster order.
//
// Precision: weights and GEMM inputs in a 16-bit compute dtype (bf16 or f16) with fp32
// accumulation; the residual stream, LayerNorm statistics, biases, position embeddings, softmax
// and the S2 area resize stay fp32, except that the qkv and fc1 GEMMs (16-bit outputs) add a
// 16-bit copy of their bias in cuBLASLt's epilogue (released checkpoints store bf16 biases). Per
// SigLIP layer, all tiles of a media item in ONE batch (B tiles, P patches, T = B*P rows):
//   xn = LN1(x) (16-bit)  ->  qkv = xn · Wqkvᵀ + b (one fused GEMM, 16-bit)
//   attn = flash_attention_dense(q, k, v) (non-causal, per tile)  ->  x += attn · Woᵀ + bo
//   xn = LN2(x)  ->  h = gelu_tanh(xn · W1ᵀ + b1) (GEMM epilogue, 16-bit)  ->  x += h · W2ᵀ + b2
// Embeddings: im2col (T, 3*p*p padded to a multiple of 8) 16-bit -> GEMM + bias -> + pos_emb.
// The projector's LayerNorms take fp32 and write the next GEMM's 16-bit input; its GELUs (erf)
// apply the bias to an fp32 GEMM output; every projector GEMM accumulates in fp32.
//
// Memory: the weights live in one device allocation (uploaded once, or filled randomly on the
// device by create_random); activations in a second one sized for options.max_tiles tiles, grown
// when an item has more. In a build without CUDA the class compiles and create* return
// Unimplemented. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "model/siglip.h"
#include "model/vision_encoder.h"

namespace vila {

struct CudaVisionOptions {
  DType compute = DType::kBF16;  // kBF16 or kF16
  int64_t max_tiles = 17;        // tiles per item the activations are sized for (NVILA-8B S2: 17)
  int device = 0;
  // Time cuBLASLt's candidates for the large GEMM shapes on their first call (cuda::Blas::
  // set_autotune; the first encode pays for it once). The environment variable
  // VILA_GEMM_AUTOTUNE=0 also turns it off.
  bool autotune = true;
  // Streams the SigLIP tower spreads an item's tiles over (1 to 4): an item of at least 4 tiles
  // per stream runs as that many lanes whose kernels overlap. The environment variable
  // VILA_VISION_STREAMS overrides it (1: one stream).
  int tower_streams = 2;
};

// What create_random builds: a SigLIP tower, the top config.json's vision fields (select_layer,
// select_feature, dynamic_s2, s2_scales, s2_resize_idx, llm_hidden; mm_hidden is derived) and a
// projector type (mlp_downsample, mlp_downsample_2x2_fix, mlp_downsample_3x3_fix, linear,
// mlp<N>x_gelu or identity).
// Device time of one stage of encode / tower_forward, accumulated while profiling is on.
struct VisionStageTime {
  std::string name;  // "siglip.qkv", "s2.merge", "projector.2.linear", "download", ...
  double ms = 0;     // summed over calls
  int64_t calls = 0;
};

struct VisionGeometry {
  SiglipConfig siglip;
  VisionConfig vision;
  std::string projector_type = "mlp_downsample_2x2_fix";

  // NVILA-8B: SigLIP-so400m-patch14-448 (hidden 1152, 27 layers, 16 heads of 72, MLP 4304, 1024
  // patches per tile, select layer -2, cls_patch), dynamic S2 448/896/1344 resized to the last
  // scale, 2x2 projector into a 3584-wide LLM.
  static VisionGeometry nvila_8b();
};

class CudaVisionEncoder {
 public:
  // Uploads the CPU encoder's weights (any checkpoint dtype) once, converted to options.compute.
  static StatusOr<std::unique_ptr<CudaVisionEncoder>> create(const VisionEncoder& cpu,
                                                             const CudaVisionOptions& options = {});
  // Random weights of the given geometry, made on the device (no host copy): uniform
  // +-1/sqrt(fan_in) linear weights, LayerNorm weights near 1, small biases. For `vila bench`.
  static StatusOr<std::unique_ptr<CudaVisionEncoder>> create_random(const VisionGeometry& geometry,
                                                                    DType dtype, uint64_t seed,
                                                                    CudaVisionOptions options = {});
  ~CudaVisionEncoder();
  CudaVisionEncoder(const CudaVisionEncoder&) = delete;
  CudaVisionEncoder& operator=(const CudaVisionEncoder&) = delete;

  // As VisionEncoder::tower_forward: tiles (n_tiles, 3, S, S) host fp32 -> out (n_tiles, L, C).
  Status tower_forward(const float* tiles, int64_t n_tiles, std::vector<float>& out);
  // As VisionEncoder::encode: projected tokens (n_tokens, llm_hidden) host fp32 of one media item.
  // The vector is new memory: on hosts where first-touch page faults are slow this allocation can
  // cost more than the whole GPU work (28 ms for NVILA-8B's 44 MB on the H100 host); callers that
  // keep buffers use encode_into or encode_device.
  StatusOr<std::vector<float>> encode(const ImageTiles& tiles, int64_t* n_tokens);

  // As encode, into caller memory: out holds out_floats >= output_tokens(tiles) * llm_hidden()
  // floats. Page-locked memory (cuda::PinnedBuffer) downloads at DMA speed, pageable memory
  // through the driver's staging.
  Status encode_into(const ImageTiles& tiles, float* out, int64_t out_floats, int64_t* n_tokens);

  // As encode, left on the device: rows (n_tokens, hidden) fp32 in the encoder's activation
  // memory, valid until the next call of encode* / tower_forward (or destruction). The work has
  // finished when this returns (the encoder's stream is synchronised), so any stream may read
  // the rows. For consumers that splice image rows on the GPU.
  struct DeviceRows {
    const float* rows = nullptr;
    int64_t n_tokens = 0;
    int64_t hidden = 0;
  };
  StatusOr<DeviceRows> encode_device(const ImageTiles& tiles);

  // Tokens encode gives for `tiles` (validated as encode does, nothing runs).
  StatusOr<int64_t> output_tokens(const ImageTiles& tiles) const;

  int64_t llm_hidden() const;
  int64_t image_size() const;
  int64_t tokens_per_tile() const;  // projector tokens of one tile (256 for NVILA-8B)
  int64_t tower_tokens() const;     // L: SigLIP tokens per tile after feature selection
  const VisionConfig& config() const;
  const SiglipConfig& tower_config() const;
  DType compute_dtype() const;

  // tower_ms: pixel upload + SigLIP; projector_ms: S2 merge + projector (+ the download for
  // encode / encode_into). Wall time with the stream synchronised at each boundary; accumulated
  // until reset.
  const VisionTimings& timings() const;
  void reset_timings();  // also clears stage_times()
  // Stage profiling: with it on, every stage is bracketed by CUDA events and the host waits at
  // each stage's end, so the per-stage device times are exact but the total is slower. Off by
  // default (no events, no extra waits).
  void set_profiling(bool on);
  const std::vector<VisionStageTime>& stage_times() const;
  // FLOPs of the last tower_forward / encode: 2 * rows * N * K per GEMM (K without the patch
  // padding) plus 4 * P² * heads * head_dim per tile and layer for attention.
  double last_flops() const;
  // Wall time of the last pixel upload (host -> device, pageable memory), part of tower_ms.
  double last_upload_ms() const;
  // Wall time of the last feature download (device -> host), part of projector_ms; 0 after
  // encode_device.
  double last_download_ms() const;
  size_t device_bytes() const;  // weights + activations + cuBLASLt workspace

 private:
  struct Impl;
  explicit CudaVisionEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vila
