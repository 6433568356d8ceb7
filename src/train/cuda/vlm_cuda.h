// CudaVlmModel: the whole VILA-architecture VLM trained on the GPU, the CUDA twin of
// train/model/vlm.h's VlmModel (same PackedBatch in, same StepResult out, the same frozen-module
// rules), built from CudaVisionTower + CudaProjector + CudaLlm over one DeviceParams.
//
// Precision: fp32 master weights, gradients and AdamW moments; bf16 GEMM operands (weights and
// activations), fp32 accumulation, fp32 residual streams, norms, softmax and loss. The GEMMs are
// bf16 whatever TrainOptions::precision says (the CPU's fp32 reference and emulated formats are
// CPU-only). The cross-entropy's dlogits are bf16.
// Determinism: the embedding, norm-weight and position gradients are summed with fp32 atomics,
// so two runs agree to rounding, not bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "train/batch.h"
#include "train/cuda/device_params.h"
#include "train/model/vlm.h"
#include "train/model/vlm_config.h"
#include "train/params.h"

namespace vila::train {

struct CudaVlmOptions {
  bool recompute = false;  // LLM activation recomputation (each layer's input kept only)
  // The attention backward without atomics (materialised instead of FlashAttention-2, slower):
  // with it every step is bitwise reproducible at every head dim (TrainContext::deterministic).
  bool deterministic = false;
};

class CudaVlmModel {
 public:
  // Uploads every parameter of `store` (values and trainable flags, which must not change
  // afterwards). Unimplemented when no GPU or no CUDA build.
  static StatusOr<std::unique_ptr<CudaVlmModel>> create(const VlmConfig& config,
                                                        const ParamStore& store,
                                                        const CudaVlmOptions& options = {});
  // Random weights on the device (benchmarks): the parameters of `config`, all trainable.
  static StatusOr<std::unique_ptr<CudaVlmModel>> create_random(const VlmConfig& config,
                                                               uint64_t seed,
                                                               const CudaVlmOptions& options = {});
  ~CudaVlmModel();

  // Loss and the full backward, gradients accumulated on the device (DeviceParams). A non-finite
  // loss is returned with no backward run.
  StatusOr<StepResult> forward_backward(const PackedBatch& batch, const TrainOptions& options);
  // Logits (T, V) only.
  StatusOr<std::vector<float>> forward_logits(const PackedBatch& batch);

  DeviceParams& params();
  const VlmConfig& config() const;
  Status synchronize();
  size_t scratch_bytes() const;

  struct Impl;

 private:
  CudaVlmModel();
  std::unique_ptr<Impl> impl_;
};

}  // namespace vila::train
