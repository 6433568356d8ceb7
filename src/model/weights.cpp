#include "model/weights.h"

#include "ops/cpu/op_check.h"

namespace vila {

StatusOr<TensorView> checkpoint_weight(const Checkpoint& ckpt, const std::string& name,
                                       const Shape& shape) {
  VILA_ASSIGN_OR_RETURN(const SafetensorsEntry* entry, ckpt.get(name, shape));
  if (!cpu::is_weight_dtype(entry->dtype)) {
    return unimplemented(entry->file + ": tensor '" + name + "' has dtype " +
                         dtype_name(entry->dtype) + " (supported: f32, bf16, f16)");
  }
  return entry->view();
}

StatusOr<cpu::LinearWeight> checkpoint_linear(const Checkpoint& ckpt, const std::string& base,
                                              int64_t out_features, int64_t in_features,
                                              bool has_bias) {
  cpu::LinearWeight w;
  VILA_ASSIGN_OR_RETURN(w.weight,
                        checkpoint_weight(ckpt, base + ".weight", {out_features, in_features}));
  if (has_bias) {
    VILA_ASSIGN_OR_RETURN(w.bias, checkpoint_weight(ckpt, base + ".bias", {out_features}));
  }
  return w;
}

}  // namespace vila
