// SiglipTower: the HF SiglipVisionModel encoder (NVILA's vision tower) on the CPU, fp32
// activations, weights read in their checkpoint dtype (f32/bf16/f16) from the mmapped safetensors.
//
// Dimensions: N tiles, S image size, p patch size, P = (S/p)² patches (tokens), C hidden,
// H heads, D = C/H head dim, F MLP intermediate, L layers run.
//
// Output: HF hidden_states[select_layer] with hidden_states = (embeddings, out_layer0, ...,
// out_layer{n_layers-1}); only the layers up to the selected one run, and post_layernorm and the
// attention-pooling head are never applied (VILA VisionTower.feature_select).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "core/tensor.h"
#include "format/json_config.h"
#include "format/safetensors.h"
#include "ops/cpu/activation.h"
#include "ops/cpu/matmul.h"

namespace vila {

// vision_tower/config.json (SiglipVisionConfig; HF defaults for absent fields).
struct SiglipConfig {
  int64_t hidden = 768;                          // hidden_size
  int64_t intermediate = 3072;                   // intermediate_size
  int64_t n_layers = 12;                         // num_hidden_layers
  int64_t n_heads = 12;                          // num_attention_heads
  int64_t n_channels = 3;                        // num_channels
  int64_t image_size = 224;                      // image_size
  int64_t patch_size = 16;                       // patch_size
  double ln_eps = 1e-6;                          // layer_norm_eps
  cpu::GeluApprox act = cpu::GeluApprox::kTanh;  // hidden_act: gelu_pytorch_tanh | gelu

  int64_t head_dim() const { return hidden / n_heads; }
  int64_t grid() const { return image_size / patch_size; }
  int64_t n_patches() const { return grid() * grid(); }
};

// Parses a SiglipVisionConfig (or the "vision_config" of a full SiglipConfig). InvalidArgument /
// Unimplemented name the file and field.
StatusOr<SiglipConfig> parse_siglip_config(const JsonFile& file);

// Views into the checkpoint mapping; nothing is copied.
struct SiglipLayerWeights {
  TensorView ln1_w, ln1_b;    // (C)  layer_norm1
  cpu::LinearWeight q, k, v;  // (C, C) + bias (C)  self_attn.{q,k,v}_proj
  cpu::LinearWeight o;        // (C, C) + bias (C)  self_attn.out_proj
  TensorView ln2_w, ln2_b;    // (C)  layer_norm2
  cpu::LinearWeight fc1;      // (F, C) + bias (F)  mlp.fc1
  cpu::LinearWeight fc2;      // (C, F) + bias (C)  mlp.fc2
};

struct SiglipWeights {
  TensorView patch_w;                      // (C, 3, p, p) embeddings.patch_embedding.weight
  TensorView patch_b;                      // (C)          embeddings.patch_embedding.bias
  TensorView pos_emb;                      // (P, C)       embeddings.position_embedding.weight
  std::vector<SiglipLayerWeights> layers;  // the L layers that run
};

class SiglipTower {
 public:
  // vision_dir holds config.json and model.safetensors (or shards). select_layer indexes HF's
  // hidden_states (n_layers + 1 entries; negative counts from the end, -2 = output of the
  // second-to-last layer). Binds and validates only the layers that run; InvalidArgument if
  // select_layer is out of range.
  static StatusOr<std::unique_ptr<SiglipTower>> load(const std::string& vision_dir,
                                                     int64_t select_layer);

  // tiles (N, 3, S, S) fp32 normalised pixels -> out (N, P, C) fp32.
  Status forward(const float* tiles, int64_t n_tiles, float* out);

  const SiglipConfig& config() const { return config_; }
  const SiglipWeights& weights() const { return weights_; }
  int64_t layers_run() const { return static_cast<int64_t>(weights_.layers.size()); }
  int64_t tokens() const { return config_.n_patches(); }

 private:
  struct Activations {      // one tile at a time
    float* x = nullptr;     // (P, C) residual stream
    float* xn = nullptr;    // (P, C) normed block input, then block output
    float* q = nullptr;     // (P, H*D)
    float* k = nullptr;     // (P, H*D)
    float* v = nullptr;     // (P, H*D)
    float* attn = nullptr;  // (P, H*D)
    float* mlp = nullptr;   // (P, F)
  };

  SiglipTower() = default;
  Status bind_weights(int64_t layers_run);
  void ensure_activations();
  Status encoder_layer(const SiglipLayerWeights& w);

  SiglipConfig config_;
  std::string dir_;
  std::unique_ptr<Checkpoint> checkpoint_;
  SiglipWeights weights_;
  Arena scratch_{"siglip_activations"};
  Activations act_;
};

}  // namespace vila
