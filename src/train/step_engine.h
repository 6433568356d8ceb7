// StepEngine: where the trainer's steps run — the model's forward + backward, the gradient norm and
// clipping, AdamW — on the CPU (VlmModel + AdamW over the ParamStore) or on a GPU (CudaVlmModel
// with the parameters, gradients and moments on the device).
//
// The ParamStore and the host AdamW stay the checkpoint format either way: a GPU engine copies
// values and moments back (to_host) before a checkpoint is written and uploads them (from_host)
// after one is restored. The trainer (trainer.h) only talks to this interface.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "train/batch.h"
#include "train/model/vlm.h"
#include "train/optimizer.h"
#include "train/params.h"

namespace vila::train {

class StepEngine {
 public:
  virtual ~StepEngine() = default;
  // Loss, and the gradients accumulated (a non-finite loss returns with no backward).
  virtual StatusOr<StepResult> forward_backward(const PackedBatch& batch,
                                                const TrainOptions& options) = 0;
  virtual Status zero_grads() = 0;
  // The global gradient norm (finite false when a gradient is not finite); with max_norm > 0 the
  // gradients are clipped as torch.nn.utils.clip_grad_norm_ does (now, or inside step()).
  virtual StatusOr<GradClipResult> clip(double max_norm) = 0;
  // One AdamW step over the trainable parameters at learning rate lr.
  virtual Status step(double lr) = 0;
  // Values and optimizer state into the ParamStore / host AdamW, and back.
  virtual Status to_host() = 0;
  virtual Status from_host() = 0;
  // Test hook support: the gradients live in the ParamStore (CPU engine only).
  virtual bool host_gradients() const = 0;
};

// device "cpu" or "cuda" (Unimplemented without a CUDA build or a GPU). `model`, `store` and
// `optimizer` must outlive the engine; the GPU engine takes the store's trainable flags as they
// are now. deterministic: the GPU engine's attention backward without atomics (TrainConfig).
StatusOr<std::unique_ptr<StepEngine>> make_step_engine(const std::string& device, VlmModel& model,
                                                       ParamStore& store, AdamW& optimizer,
                                                       bool deterministic = false);

}  // namespace vila::train
