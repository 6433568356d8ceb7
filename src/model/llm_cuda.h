// CudaLanguageModel: the Llama-family decoder of LanguageModel (model/llm.h) on one CUDA GPU.
//
// Built from a loaded CPU LanguageModel: reuses its parsed config and uploads the tensors of its
// weights() once (one device allocation). Owns a device KV cache for one sequence (fp32,
// (L, S, Hkv, D) for K and for V) and mirrors LanguageModel::forward op for op:
//   xn = rms_norm(x); q, k, v = linear(xn); rope(q), rope(k); x += o(attention(q, K, V))
//   xn = rms_norm(x); x += down(silu(gate(xn)) * up(xn)); logits = lm_head(rms_norm(x))
// Activations are fp32 throughout. Weights:
//   kF32   fp32 (checkpoint bf16/f16 widened): matches the CPU oracle to ~1e-6 on the fixtures.
//   kBF16  bf16 weights and bf16-rounded GEMM inputs, fp32 accumulation (half the weight bytes);
//          norms, biases, RoPE, attention and the residual stream stay fp32.
// In a build without CUDA, create() returns Unimplemented. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>

#include "core/status.h"
#include "model/llm.h"
#include "model/llm_config.h"

namespace vila {

enum class CudaWeightPrecision { kF32, kBF16 };

struct CudaLlmOptions {
  int64_t max_seq = 4096;   // KV cache positions
  int64_t max_chunk = 512;  // tokens per forward chunk (bounds the activation memory)
  CudaWeightPrecision weights = CudaWeightPrecision::kF32;
  int device = 0;
};

class CudaLanguageModel {
 public:
  // The CPU model must outlive nothing: its weights are copied to the device here.
  static StatusOr<std::unique_ptr<CudaLanguageModel>> create(const LanguageModel& cpu,
                                                             const CudaLlmOptions& options = {});
  ~CudaLanguageModel();
  CudaLanguageModel(const CudaLanguageModel&) = delete;
  CudaLanguageModel& operator=(const CudaLanguageModel&) = delete;

  const LlmConfig& config() const;
  // Same contract as LanguageModel::forward, with the cache held on the device: embeds (n, C)
  // host fp32 at positions length() .. length()+n-1; logits (n_logits, V) host fp32 of the last
  // n_logits positions. OutOfRange (cache unchanged) if the positions do not fit.
  Status forward(const float* embeds, int64_t n, float* logits, int64_t n_logits);

  int64_t length() const;    // positions in the device KV cache
  int64_t capacity() const;  // options.max_seq
  void reset();              // forgets every position
  Status truncate(int64_t n);  // keeps the first n positions; InvalidArgument unless n <= length
  size_t device_bytes() const;  // weights + cache + activations

 private:
  struct Impl;
  explicit CudaLanguageModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vila
