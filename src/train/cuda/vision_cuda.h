// The vision side of a VLM on the GPU for training: the SigLIP tower and the projector, the CUDA
// twins of train/model/vlm_vision_tower.h and vlm_projector.h (same math; bf16 GEMM operands,
// fp32 residual stream, norms and gradients).
//
// Tower, N images of S x S, P patches, C hidden, R = N·P rows:
//   x = im2col(pixels) Wpatchᵀ + b + pos                                          (R, C) f32
//   per layer:  h1 = LN1(x) bf16;  [q | k | v] = h1 Wqkvᵀ + b  (R, 3C) bf16 (bias in the GEMM's
//               epilogue, attended at row stride 3C);  a = attention per image (full)
//               x2 = x + a Woᵀ + bo;   x = x2 + gelu_tanh(LN2(x2) W1ᵀ + b1) W2ᵀ + b2  (the GELU in
//               the fc1 GEMM's epilogue, its input kept for the backward)
//   features = x after layers_run() layers                                         (R, C) f32
// Projector stages (vlm_config.h projector_stages) on (N, tokens, dim):
//   spatial-to-channel (f32 -> f32), LayerNorm (f32 -> bf16), Linear (bf16 -> bf16, or f32 when
//   last), GELU erf (bf16 -> bf16), converting between stages where dtypes differ (a LayerNorm
//   after a GELU reads an fp32 copy); features (N·Ti, H) f32 for the LLM's splice.
// Activations live in the context's scratch under "vit.*" and "proj.*".
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "train/cuda/span_attention.h"
#include "train/cuda/train_context.h"
#include "train/model/vlm_config.h"

namespace vila::train {

class CudaVisionTower {
 public:
  Status bind(const VisionTowerConfig& config, TrainContext& ctx);
  // pixels (N, 3, S, S) host f32 -> features() (N·P, C) f32 on the device.
  Status forward(const float* pixels, int64_t n_images);
  float* features() const { return out_; }
  // dfeatures (N·P, C) f32 device -> parameter gradients.
  Status backward(const float* dfeatures);

 private:
  struct LayerOffsets {
    int64_t ln1_w, ln1_b, ln2_w, ln2_b, wqkv, bqkv, wo, bo, w1, b1, w2, b2;
  };
  struct Saved {
    float *x, *x2, *mean1, *rstd1, *mean2, *rstd2, *lse;
    uint16_t *h1, *q, *k, *v, *a, *h2, *f1, *g;  // q, k, v: column blocks of one (R, 3C) buffer
  };
  StatusOr<Saved> saved(size_t l);
  AttnDims attn_dims() const;  // full attention over q, k, v at row stride 3C
  Status layer_forward(size_t l, float* x_out);
  Status layer_backward(size_t l, float* dx);

  VisionTowerConfig cfg_;
  TrainContext* ctx_ = nullptr;
  std::vector<LayerOffsets> layers_;
  int64_t patch_w_ = 0, patch_b_ = 0, pos_ = 0;
  int64_t N_ = 0, R_ = 0, P_ = 0, C_ = 0, F_ = 0, K_ = 0;  // K: channels·p·p
  uint16_t* cols_ = nullptr;                               // (R, K) bf16 im2col of the last forward
  float* out_ = nullptr;
};

class CudaProjector {
 public:
  Status bind(const VlmConfig& config, TrainContext& ctx);
  // in (N, P, C) f32 device -> output() (N·Ti, H) f32 device.
  Status forward(const float* in, int64_t n_images);
  float* output() const { return out_; }
  // dout (N·Ti, H) f32 -> parameter gradients; din (N, P, C) f32 written when non-null.
  Status backward(const float* dout, float* din);

 private:
  struct Stage {
    ProjStage spec;
    int64_t w = -1, b = -1;  // parameter offsets (LayerNorm scale / shift, Linear weight / bias)
    int64_t tokens_in = 0, tokens_out = 0;
    DType in_dtype = DType::kF32, out_dtype = DType::kF32;
    void* in = nullptr;  // the stage's saved input
    float *mean = nullptr, *rstd = nullptr;
  };
  std::vector<Stage> stages_;
  TrainContext* ctx_ = nullptr;
  int64_t in_tokens_ = 0, in_dim_ = 0, N_ = 0;
  float* out_ = nullptr;
};

}  // namespace vila::train
