#include "train/params.h"

#include <algorithm>

namespace vila::train {

const char* param_module_dir(ParamModule module) {
  switch (module) {
    case ParamModule::kVisionTower:
      return "vision_tower";
    case ParamModule::kProjector:
      return "mm_projector";
    case ParamModule::kLlm:
      return "llm";
  }
  return "?";
}

StatusOr<ParamModule> parse_param_module(std::string_view name) {
  if (name == "vision_tower" || name == "vision") return ParamModule::kVisionTower;
  if (name == "mm_projector" || name == "projector") return ParamModule::kProjector;
  if (name == "llm") return ParamModule::kLlm;
  return invalid_argument("unknown module '" + std::string(name) +
                          "' (expected vision_tower, mm_projector or llm)");
}

const char* param_role_name(ParamRole role) {
  switch (role) {
    case ParamRole::kWeight:
      return "weight";
    case ParamRole::kBias:
      return "bias";
    case ParamRole::kNorm:
      return "norm";
    case ParamRole::kEmbedding:
      return "embedding";
  }
  return "?";
}

std::string Param::full_name() const { return std::string(param_module_dir(module)) + "/" + name; }

StatusOr<Param*> ParamStore::add(ParamModule module, std::string name, ParamRole role,
                                 const Shape& shape) {
  const std::string full = std::string(param_module_dir(module)) + "/" + name;
  if (shape.rank == 0 || shape.numel() <= 0) {
    return invalid_argument("parameter " + full + " has an empty shape " + shape.to_string());
  }
  if (find(full) != nullptr) return invalid_argument("duplicate parameter " + full);
  Param& p = params_.emplace_back();
  p.module = module;
  p.name = std::move(name);
  p.role = role;
  p.shape = shape;
  p.value.assign(static_cast<size_t>(shape.numel()), 0.0f);
  p.grad.assign(static_cast<size_t>(shape.numel()), 0.0f);
  return &p;
}

Param* ParamStore::find(ParamModule module, std::string_view name) {
  for (Param& p : params_) {
    if (p.module == module && p.name == name) return &p;
  }
  return nullptr;
}

Param* ParamStore::find(std::string_view full_name) {
  for (Param& p : params_) {
    if (p.full_name() == full_name) return &p;
  }
  return nullptr;
}

std::vector<Param*> ParamStore::all() {
  std::vector<Param*> out;
  for (Param& p : params_) out.push_back(&p);
  return out;
}

std::vector<const Param*> ParamStore::all() const {
  std::vector<const Param*> out;
  for (const Param& p : params_) out.push_back(&p);
  return out;
}

std::vector<Param*> ParamStore::trainable() {
  std::vector<Param*> out;
  for (Param& p : params_) {
    if (p.trainable) out.push_back(&p);
  }
  return out;
}

void ParamStore::set_trainable(ParamModule module, bool trainable) {
  for (Param& p : params_) {
    if (p.module == module) p.trainable = trainable;
  }
}

bool ParamStore::module_trainable(ParamModule module) const {
  return std::any_of(params_.begin(), params_.end(),
                     [&](const Param& p) { return p.module == module && p.trainable; });
}

void ParamStore::zero_grads() {
  for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
}

int64_t ParamStore::count(bool trainable_only) const {
  int64_t n = 0;
  for (const Param& p : params_) {
    if (!trainable_only || p.trainable) n += p.numel();
  }
  return n;
}

}  // namespace vila::train
