// The VILA multimodal projector for training: its stages (vlm_config.h projector_stages, the
// inference side's Sequential of model/projector.h) run forward with every stage input saved, and
// backward in reverse.
//
// Per stage, on x (rows, in_dim):
//   spatial-to-channel k:  (N, s², C) -> (N, ceil(s/k)², k²C)       (train/downsample.h)
//   LayerNorm (eps 1e-5):  y = LN(x)                                 (train/norm.h)
//   Linear:                y = x Wᵀ + b                              (train/linear.h)
//   GELU (erf, nn.GELU):   y = gelu(x)                               (train/activation.h)
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "train/model/model_common.h"
#include "train/model/vlm_config.h"
#include "train/precision.h"

namespace vila::train {

class ProjectorModel {
 public:
  // Binds the registered mm_projector/ parameters of `config`.
  Status bind(const VlmConfig& config, ParamStore& store);

  // in (N, P, C) vision features -> output() (N, Ti, H). Keeps `in` by pointer until backward.
  Status forward(const float* in, int64_t n_images, const LinearPrecision& precision);
  std::vector<float>& output() { return out_; }

  // dout (N, Ti, H) -> din (N, P, C) written when din is non-null; accumulates parameter grads.
  Status backward(const float* dout, float* din, const LinearPrecision& precision);

 private:
  struct Stage {
    ProjStage spec;
    NormRef norm;   // kLayerNorm
    LinearRef lin;  // kLinear
    LayerNormSaved ln_saved;
    std::vector<float> input;  // (rows_in, in_dim) saved input (stages after the first)
    int64_t tokens_in = 0;     // tokens per image at this stage's input
    int64_t tokens_out = 0;    // and at its output
  };

  TensorView stage_input(size_t i, int64_t n_images);

  std::vector<Stage> stages_;
  int64_t in_tokens_ = 0;      // P
  int64_t in_channels_ = 0;    // C
  const float* in_ = nullptr;  // (N, P, C) of the last forward
  int64_t n_images_ = 0;
  std::vector<float> out_;         // (N, Ti, H)
  std::vector<float> g_, g_next_;  // backward scratch
};

}  // namespace vila::train
