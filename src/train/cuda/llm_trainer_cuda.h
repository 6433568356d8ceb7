// CudaLlmTrainer: training steps of a Qwen2 decoder alone (text only, batch rows of equal length)
// on the GPU — `vila bench --train` and the CUDA-vs-CPU LLM tests. A thin driver of CudaLlm
// (llm_cuda.h: the model), DeviceParams (device_params.h: parameters and AdamW) and the fused
// cross-entropy kernel; the whole VLM is CudaVlmModel (vlm_cuda.h).
// Step: R = batch · T rows, each batch row an independent sequence at positions 0..T-1;
// loss = mean cross entropy over targets != -100; grads (zeroed first) in fp32.
// recompute: only each layer's input x is kept; the layer's forward reruns before its backward.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/model/vlm_config.h"
#include "train/params.h"

namespace vila::train {

struct CudaTrainOptions {
  int64_t batch = 1;  // sequences per step
  int64_t seq = 128;  // T
  bool recompute = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double max_grad_norm = 0.0;  // 0: no clipping
};

class CudaLlmTrainer {
 public:
  // From the llm/ parameters of `store` (registered by register_params), or random
  // (uniform ±0.02·√3 matrices, norms 1, biases 0) when store is null.
  static StatusOr<std::unique_ptr<CudaLlmTrainer>> create(const LanguageConfig& config,
                                                          const CudaTrainOptions& options,
                                                          const ParamStore* store,
                                                          uint64_t seed = 0);
  ~CudaLlmTrainer();

  // ids, targets (batch · T) host int32; forward + backward, gradients (zeroed first) on the
  // device. Returns the mean loss over the counted targets.
  StatusOr<double> forward_backward(const int32_t* ids, const int32_t* targets);
  // One AdamW step at learning rate lr (clipping at options.max_grad_norm first).
  Status optimizer_step(double lr);
  Status synchronize();

  // Host copies of a parameter's fp32 value / gradient by its name in llm/
  // ("model.layers.0.self_attn.q_proj.weight").
  StatusOr<std::vector<float>> value(const std::string& name);
  StatusOr<std::vector<float>> grad(const std::string& name);
  std::vector<std::string> names() const;

  int64_t parameter_count() const;       // scalars
  int64_t embedding_parameters() const;  // V·C (the tied table, or embed + lm_head)
  void* stream() const;

  struct Impl;

 private:
  CudaLlmTrainer();
  std::unique_ptr<Impl> impl_;
};

}  // namespace vila::train
