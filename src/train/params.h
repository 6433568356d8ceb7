// Trainable parameters: fp32 master values and gradients, named as the released checkpoint names
// them, with the role that decides weight decay and the module that decides freezing.
//
// Full name of a parameter = module folder + "/" + tensor name, e.g.
//   "llm/model.layers.0.self_attn.q_proj.weight", "vision_tower/vision_model.embeddings.
//   patch_embedding.weight", "mm_projector/layers.2.weight": the tensor name is the key in that
//   folder's model.safetensors, so a ParamStore saves to (and loads from) the released layout.
// Gradients are accumulated (+=, src/train/check.h) and zeroed by zero_grads() after each step.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vila::train {

// The three trainable parts of a VLM; their folder names in the released layout.
enum class ParamModule { kVisionTower, kProjector, kLlm };
constexpr int kParamModules = 3;
const char* param_module_dir(ParamModule module);  // "vision_tower", "mm_projector", "llm"
// "vision_tower" | "mm_projector" | "llm" (also "projector", "vision") -> module.
StatusOr<ParamModule> parse_param_module(std::string_view name);

// What a tensor is, which decides its optimizer treatment: only kWeight (matrices of Linear and
// conv layers) takes weight decay; biases, norm scales/shifts and embedding tables do not
// (VILA / HF Trainer: no decay on "bias" and norm weights; we also exempt embeddings and
// position embeddings).
enum class ParamRole { kWeight, kBias, kNorm, kEmbedding };
const char* param_role_name(ParamRole role);

struct Param {
  ParamModule module = ParamModule::kLlm;
  std::string name;  // tensor name inside the module's safetensors
  ParamRole role = ParamRole::kWeight;
  Shape shape;
  std::vector<float> value;  // (shape) fp32 master weights
  std::vector<float> grad;   // (shape) fp32, accumulated
  bool trainable = true;     // false: frozen (its grad stays empty of meaning, never stepped)

  int64_t numel() const { return shape.numel(); }
  std::string full_name() const;  // "llm/model.norm.weight"
  bool decays() const { return role == ParamRole::kWeight; }
  TensorView view() { return f32_view(value.data(), shape); }
  // An empty view when frozen, so ops skip the parameter gradient (check.h convention).
  TensorView grad_view() { return trainable ? f32_view(grad.data(), shape) : TensorView(); }
};

class ParamStore {
 public:
  // Adds a zero-initialised parameter; the reference stays valid for the store's lifetime.
  // InvalidArgument on a duplicate full name or an empty shape.
  StatusOr<Param*> add(ParamModule module, std::string name, ParamRole role, const Shape& shape);

  Param* find(ParamModule module, std::string_view name);
  Param* find(std::string_view full_name);
  std::vector<Param*> all();  // in insertion order
  std::vector<const Param*> all() const;
  std::vector<Param*> trainable();  // trainable ones, in insertion order

  void set_trainable(ParamModule module, bool trainable);
  bool module_trainable(ParamModule module) const;  // any parameter of it trainable
  void zero_grads();
  int64_t count(bool trainable_only = false) const;  // number of scalars

 private:
  std::deque<Param> params_;  // deque: stable addresses
};

}  // namespace vila::train
