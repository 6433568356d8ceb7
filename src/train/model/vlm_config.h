// VlmConfig: the geometry of a trainable VILA-architecture model (SigLIP vision tower, VILA
// multimodal projector, Qwen2 LLM), its JSON round trip, named presets, and the list of every
// parameter (released tensor name, role, shape) that the model registers and the checkpoint holds.
//
// Vision tower (HF SiglipVisionModel): image_size S, patch_size p, P = (S/p)² patches, hidden C,
// layers L, heads H (D = C/H), intermediate F, LayerNorm eps 1e-6, GELU tanh
// ("gelu_pytorch_tanh"). VILA takes hidden_states[select_layer] (-2: the output of layer L-2, so
// L + 1 + select_layer layers run); post_layernorm and the pooling head are not part of it.
// Projector (VILA MultimodalProjector): every type of the inference side's table
// (model/projector.h projector_stage_specs: "mlp_downsample_2x2_fix" / "mlp_downsample",
// "mlp_downsample_3x3_fix", the 3x3_s2 stacks, "linear", "mlp<N>x_gelu", "identity").
// LLM (Qwen2): hidden, layers, heads, kv_heads, intermediate, vocab, rope_theta, rms_eps,
// tie_word_embeddings, q/k/v bias.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "train/params.h"

namespace vila::train {

struct VisionTowerConfig {
  int64_t image_size = 28;
  int64_t patch_size = 4;
  int64_t channels = 3;
  int64_t hidden = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t intermediate = 128;
  double layer_norm_eps = 1e-6;
  int64_t select_layer = -2;  // index into HF hidden_states (layers + 1 entries)

  int64_t grid() const { return image_size / patch_size; }
  int64_t patches() const { return grid() * grid(); }
  int64_t head_dim() const { return hidden / heads; }
  // Encoder layers that run for select_layer (hidden_states[0] is the embeddings).
  int64_t layers_run() const { return select_layer < 0 ? layers + 1 + select_layer : select_layer; }
};

struct ProjectorConfig {
  std::string type = "mlp_downsample_2x2_fix";
};

struct LanguageConfig {
  int64_t hidden = 128;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t intermediate = 256;
  int64_t vocab = 512;
  int64_t max_position = 4096;
  double rope_theta = 1e6;
  double rms_eps = 1e-6;
  bool tie_word_embeddings = true;
  bool qkv_bias = true;  // Qwen2: q/k/v projections have biases
  // Special ids written to the released configs (-1: none).
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  int64_t pad_token_id = -1;

  int64_t head_dim() const { return hidden / heads; }
};

struct VlmConfig {
  VisionTowerConfig vision;
  ProjectorConfig projector;
  LanguageConfig llm;

  // InvalidArgument naming the field ("vision_tower.hidden") for a bad geometry.
  Status validate() const;
  // Visual tokens per image after the projector (Ti).
  int64_t tokens_per_image() const;
  int64_t parameter_count() const;  // scalars of every registered parameter

  nlohmann::json to_json() const;
  // {"vision_tower": {...}, "projector": {...}, "llm": {...}}; absent fields keep the defaults,
  // a field of the wrong type or an unknown key is InvalidArgument naming it ("llm.hidden"), and
  // the result is validated. `label` names the source in messages.
  static StatusOr<VlmConfig> from_json(const nlohmann::json& j, const std::string& label);
};

// "tiny" (tests: a few thousand parameters) or "fashion" (the demo: 28 x 28 images); the caller
// sets llm.vocab from its tokenizer. InvalidArgument for other names.
StatusOr<VlmConfig> vlm_preset(const std::string& name);

// One projector stage (the inference side's Sequential, model/projector.h).
enum class ProjStageKind { kSpatialToChannel, kLayerNorm, kLinear, kGelu };
struct ProjStage {
  ProjStageKind kind = ProjStageKind::kGelu;
  std::string name;                 // tensor prefix, "layers.2" ("layers" for the "linear" type)
  int64_t factor = 0;               // kSpatialToChannel: k
  int64_t in_dim = 0, out_dim = 0;  // channels in / out
};
constexpr float kProjectorLnEps = 1e-5f;  // nn.LayerNorm default in VILA's projector

// The stages of config.projector.type for mm_hidden C = vision.hidden and LLM hidden H;
// Unimplemented naming the type for one this engine does not train.
StatusOr<std::vector<ProjStage>> projector_stages(const VlmConfig& config);

// Every parameter in registration order: module, released tensor name, role, shape.
struct ParamSpec {
  ParamModule module;
  std::string name;
  ParamRole role;
  Shape shape;
};
StatusOr<std::vector<ParamSpec>> param_specs(const VlmConfig& config);

// Registers every parameter of param_specs(config) in `store`, zero-initialised; one already
// there under the same name is kept (so loading before creating the model works) unless its shape
// differs: InvalidArgument naming it.
Status register_params(const VlmConfig& config, ParamStore& store);

}  // namespace vila::train
