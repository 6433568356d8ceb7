// AdamW over a ParamStore (fp32 master weights), with states in a chosen StateFormat, plus the
// gradient utilities a training step needs (global norm, clipping, scaling) and the optimizer
// state's safetensors (de)serialization.
//
// One step for parameter p with gradient g, per-parameter step count t (PyTorch
// torch.optim.AdamW, fused=False, foreach=False, amsgrad=False, maximize=False: _single_tensor_adam
// with decoupled weight decay), in PyTorch's operation order; Python floats are doubles, turned
// into fp32 scalars where they meet fp32 tensors; every tensor op rounds to fp32:
//   t += 1
//   if wd != 0 and p.decays():  p = p * float(1 - lr wd)                       (param.mul_)
//   m = m + float(1 - b1) (g - m)        (exp_avg.lerp_(g, 1 - b1); ATen's vectorised lerp for a
//                                          weight < 0.5 is one fma: fma(w, g - m, m))
//   v = v * float(b2);  v = v + (float(1 - b2) g) g       (mul_(b2).addcmul_(g, g, value=1 - b2))
//   bc1 = 1 - b1^t;  bc2 = 1 - b2^t                                             (double)
//   step_size = lr / bc1;  bc2_sqrt = bc2^0.5                                   (double)
//   denom = sqrt(v) / float(bc2_sqrt) + float(eps)   ((exp_avg_sq.sqrt() / bc2_sqrt).add_(eps))
//   p = p + (float(-step_size) m) / denom           (param.addcdiv_(m, denom, value=-step_size))
// i.e. p -= lr m̂ / (sqrt(v̂) + eps) with m̂ = m / (1 - b1^t), v̂ = v / (1 - b2^t).
// Weight decay applies only to ParamRole::kWeight (Param::decays()): no decay on biases, norms,
// embeddings. Frozen parameters are skipped and keep their state; a parameter's state is created
// (zeros, t = 0) at its first step, as PyTorch's lazy state is, so a module unfrozen later starts
// from t = 0. States m and v live in StateTensors (optimizer_state.h), updated block by block:
// decode 128 values to fp32, apply the formula, encode back; with kF32 states the result is the
// fp32 formula above exactly.
//
// Serialization ("<full param name>.<suffix>", e.g. "llm/model.norm.weight.exp_avg"):
//   .step              I64 (1)         t
//   .exp_avg           F32|BF16|I8     (param shape) codes of m
//   .exp_avg_sq        F32|BF16|U8     (param shape) codes of v
//   .exp_avg.scale     F32 (blocks)    kI8Block scales of m (only for kI8Block)
//   .exp_avg_sq.scale  F32 (blocks)    kI8Block scales of v
// plus metadata "optimizer" = the config as JSON. Restoring copies the stored bytes, so a resumed
// run continues bit for bit.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"
#include "format/safetensors.h"
#include "train/optimizer_state.h"
#include "train/params.h"

namespace vila::train {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // VILA's default
  StateFormat exp_avg_format = StateFormat::kF32;
  StateFormat exp_avg_sq_format = StateFormat::kF32;
};

// The config as a JSON object string (doubles printed to round-trip exactly), and back.
std::string adamw_config_to_json(const AdamWConfig& config);
// InvalidArgument naming the field that is missing, mistyped or unknown.
StatusOr<AdamWConfig> adamw_config_from_json(const std::string& json);

constexpr const char* kOptimizerMetadataKey = "optimizer";

// Per-parameter state.
struct AdamWParamState {
  int64_t step = 0;        // t
  Shape shape;             // the parameter's shape
  StateTensor exp_avg;     // (shape) m, MomentKind::kSigned
  StateTensor exp_avg_sq;  // (shape) v, MomentKind::kNonNegative
};

class AdamW {
 public:
  // InvalidArgument naming the field: 0 <= beta1, beta2 < 1, eps >= 0, weight_decay >= 0 (all
  // finite); Unimplemented for state formats not implemented yet.
  static StatusOr<AdamW> create(const AdamWConfig& config);

  // One step over every trainable parameter of `params` with learning rate `lr` (finite, >= 0,
  // else InvalidArgument). Gradients are read, not zeroed.
  Status step(ParamStore& params, double lr);

  const AdamWConfig& config() const { return config_; }
  // State of a parameter (by full name), nullptr before its first step.
  const AdamWParamState* state(const std::string& full_name) const;
  // Replaces (or creates) the state of parameter `param` from fp32 moments m, v (numel values
  // each) at step count `step`, encoded in this config's formats (the CUDA trainer's moments
  // brought back for a checkpoint).
  Status set_state(const Param& param, int64_t step, const float* m, const float* v);
  // Bytes of optimizer state per parameter value for this config (m + v, scales included):
  // 8 for f32/f32, 4 for bf16/bf16, 2.0625 for i8_block/i8_block.
  double bytes_per_param() const;
  int64_t state_bytes() const;  // total bytes held now

  // Adds every parameter state (names above) and the config metadata to `writer`.
  Status save(SafetensorsWriter& writer) const;
  // Replaces the state with the one in `file` / `checkpoint`, checked against `params`: every
  // stored state must belong to a parameter of `params` (InvalidArgument "optimizer state for
  // unknown parameter ..."), have all its tensors (NotFound naming the tensor), the parameter's
  // shape and this config's formats (InvalidArgument naming tensor, expected and actual). The file
  // version also checks the "optimizer" metadata against config(). Parameters with no stored
  // state start from t = 0. On error the current state is left unchanged.
  Status load(const SafetensorsFile& file, const ParamStore& params);
  Status load(const Checkpoint& checkpoint, const ParamStore& params);

 private:
  AdamWConfig config_;
  std::map<std::string, AdamWParamState> states_;  // by full parameter name
};

// ---- gradient utilities (trainable parameters only) ----

// sqrt(sum g^2) over all trainable gradients, accumulated in double; inf / NaN if any gradient
// is non-finite.
double global_grad_norm(ParamStore& params);

struct GradClipResult {
  double norm = 0.0;     // total norm before clipping
  bool finite = true;    // false: norm is inf / NaN; gradients were left untouched (skip the step)
  bool clipped = false;  // true: gradients were multiplied by `scale`
  float scale = 1.0f;    // max_norm / (norm + 1e-6) when < 1
};

// torch.nn.utils.clip_grad_norm_: scale = max_norm / (norm + 1e-6); when scale < 1 every trainable
// gradient is multiplied by float(scale). InvalidArgument unless max_norm is finite and > 0.
StatusOr<GradClipResult> clip_grad_norm(ParamStore& params, double max_norm);
constexpr double kClipEps = 1e-6;

// g *= factor for every trainable gradient (e.g. 1 / accumulation steps).
void scale_grads(ParamStore& params, float factor);

}  // namespace vila::train
