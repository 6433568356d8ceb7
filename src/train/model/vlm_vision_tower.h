// The SigLIP vision tower for training: forward over N images and the hand-written backward.
//
// Dimensions: N images, S image size, p patch size, P = (S/p)² patches, C hidden, H heads,
// D = C/H, F intermediate, R = N·P rows, L' = layers_run() encoder layers.
// Forward (HF SiglipVisionModel up to hidden_states[select_layer]):
//   x = patch_embed(pixels) + pos_emb                              (R, C)
//   per layer:  x2 = x + out_proj(attn_full(q(h1), k(h1), v(h1))),  h1 = LN1(x)
//               x  = x2 + fc2(gelu_tanh(fc1(LN2(x2))))
// attention is full within each image (the loop runs image by image, so images never see each
// other and the saved softmax is N·H·P², not H·R²), scale 1/√D.
// Backward: the same steps transposed (train/*.h ops), parameter gradients accumulated.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "train/attention.h"
#include "train/model/model_common.h"
#include "train/model/vlm_config.h"
#include "train/precision.h"

namespace vila::train {

class VisionTowerModel {
 public:
  // Binds the registered vision_tower/ parameters of `config`.
  Status bind(const VisionTowerConfig& config, ParamStore& store);

  // pixels (N, 3, S, S), kept by pointer until backward. Output: features() (N, P, C).
  Status forward(const float* pixels, int64_t n_images, const LinearPrecision& precision);
  std::vector<float>& features() { return out_; }

  // dfeatures (N, P, C) of the last forward; accumulates every parameter gradient.
  Status backward(const float* dfeatures, const LinearPrecision& precision);

 private:
  struct LayerParams {
    NormRef ln1, ln2;
    LinearRef q, k, v, o, fc1, fc2;
  };
  struct LayerSaved {
    std::vector<float> x, h1, q, k, v, a, x2, h2, f1, g;  // (R, C) / (R, F) for f1, g
    LayerNormSaved n1, n2;
    std::vector<AttentionSaved> att;  // one per image
  };

  Status layer_forward(int64_t l, const LinearPrecision& precision, std::vector<float>& x_out);
  Status layer_backward(int64_t l, const LinearPrecision& precision);

  VisionTowerConfig config_;
  Param* patch_w_ = nullptr;  // (C, 3, p, p)
  Param* patch_b_ = nullptr;  // (C)
  Param* pos_ = nullptr;      // (P, C)
  std::vector<LayerParams> layers_;

  const float* pixels_ = nullptr;  // (N, 3, S, S) of the last forward
  int64_t n_images_ = 0;
  std::vector<LayerSaved> saved_;  // L' entries
  std::vector<float> out_;         // (R, C)
  // Backward scratch: dx (R, C) the residual-stream gradient, the rest per layer.
  std::vector<float> dx_, dh_, tmp_, da_, dq_, dk_, dv_, df_;
};

}  // namespace vila::train
