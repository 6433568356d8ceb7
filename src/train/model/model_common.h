// Helpers shared by the trainable model parts (train/model/): parameter lookup with shape check,
// views of reusable buffers, and the LinearParams / LinearGrads of a (weight, bias) pair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "train/linear.h"
#include "train/norm.h"
#include "train/params.h"

namespace vila::train {

// The registered parameter `module/name`; InvalidArgument naming it when absent or mis-shaped
// (the model was created from another config).
inline StatusOr<Param*> find_param(ParamStore& store, ParamModule module, const std::string& name,
                                   const Shape& shape) {
  Param* p = store.find(module, name);
  if (p == nullptr) {
    return invalid_argument(std::string("model: parameter ") + param_module_dir(module) + "/" +
                            name + " is not registered");
  }
  if (p->shape != shape) {
    return invalid_argument("model: parameter " + p->full_name() + " has shape " +
                            p->shape.to_string() + ", expected " + shape.to_string());
  }
  return p;
}

// Resizes a reusable buffer (capacity only grows, so steady-state steps do not reallocate) and
// views it with `shape`.
inline TensorView buffer(std::vector<float>& v, const Shape& shape) {
  v.resize(static_cast<size_t>(shape.numel()));
  return f32_view(v.data(), shape);
}

// A view of an existing buffer (already sized) as `shape`.
inline TensorView view(std::vector<float>& v, const Shape& shape) {
  return f32_view(v.data(), shape);
}

// Empty when p is null (an absent bias).
inline TensorView value_of(Param* p) { return p == nullptr ? TensorView() : p->view(); }
inline TensorView grad_of(Param* p) { return p == nullptr ? TensorView() : p->grad_view(); }

// A Linear's weight (out, in) and optional bias.
struct LinearRef {
  Param* weight = nullptr;
  Param* bias = nullptr;

  LinearParams params() const { return {weight->view(), value_of(bias)}; }
  LinearGrads grads() const { return {weight->grad_view(), grad_of(bias)}; }
};

// A norm's scale and optional shift.
struct NormRef {
  Param* weight = nullptr;
  Param* bias = nullptr;

  NormGrads grads() const { return {weight->grad_view(), grad_of(bias)}; }
};

}  // namespace vila::train
