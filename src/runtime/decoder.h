// Decoder: one sequence being generated on some backend, so generate() and score_continuation()
// are written once for all of them:
//   CpuDecoder   the CPU oracle (LanguageModel + KvCache), sampling on the host
//   CudaDecoder  the GPU engine (LlmEngine, one of its sequence slots), sampling on the GPU
// Prompt embeddings are always built on the host from the checkpoint (LanguageModel::embed), so
// both backends see the same inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "model/llm.h"
#include "model/llm_config.h"
#include "runtime/kv_cache.h"
#include "runtime/sampler.h"

namespace vila {

class LlmEngine;

// True when vila.cpp was built with CUDA and a GPU is usable.
bool cuda_available();

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual const LlmConfig& config() const = 0;
  virtual const char* backend() const = 0;  // "cpu" or "cuda"
  // Token embeddings (n, C) host fp32.
  virtual Status embed(const int32_t* ids, int64_t n, float* out) const = 0;
  // Starts an empty sequence with room for `capacity` positions (forgets the previous one).
  virtual Status begin(int64_t capacity) = 0;
  virtual int64_t length() const = 0;
  virtual int64_t capacity() const = 0;
  // Appends n positions (embeds (n, C) host fp32); logits of the last n_logits positions go to
  // logits (n_logits, V) host fp32. OutOfRange past capacity (the sequence is then unchanged).
  virtual Status forward(const float* embeds, int64_t n, float* logits, int64_t n_logits) = 0;
  // Feeds `token` at the next position and returns the token picked after it with `sampler`'s
  // parameters; `index` numbers the draw (a GPU sampler derives its random number from it).
  virtual StatusOr<int32_t> step(int32_t token, Sampler& sampler, uint64_t index) = 0;
};

class CpuDecoder final : public Decoder {
 public:
  explicit CpuDecoder(LanguageModel& llm) : llm_(llm), cache_(llm.make_cache(0)) {}
  const LlmConfig& config() const override { return llm_.config(); }
  const char* backend() const override { return "cpu"; }
  Status embed(const int32_t* ids, int64_t n, float* out) const override {
    return llm_.embed(ids, n, out);
  }
  Status begin(int64_t capacity) override;
  int64_t length() const override { return cache_.length(); }
  int64_t capacity() const override { return cache_.capacity(); }
  Status forward(const float* embeds, int64_t n, float* logits, int64_t n_logits) override {
    return llm_.forward(embeds, n, cache_, logits, n_logits);
  }
  StatusOr<int32_t> step(int32_t token, Sampler& sampler, uint64_t index) override;

 private:
  LanguageModel& llm_;
  KvCache cache_;
  std::vector<float> embed_, logits_;
};

// Uses sequence slots of `engine` (one at a time); `cpu` provides the prompt embeddings.
class CudaDecoder final : public Decoder {
 public:
  CudaDecoder(LlmEngine& engine, const LanguageModel& cpu) : engine_(engine), cpu_(cpu) {}
  ~CudaDecoder() override;
  const LlmConfig& config() const override;
  const char* backend() const override { return "cuda"; }
  Status embed(const int32_t* ids, int64_t n, float* out) const override {
    return cpu_.embed(ids, n, out);
  }
  Status begin(int64_t capacity) override;
  int64_t length() const override;
  int64_t capacity() const override { return capacity_; }
  Status forward(const float* embeds, int64_t n, float* logits, int64_t n_logits) override;
  StatusOr<int32_t> step(int32_t token, Sampler& sampler, uint64_t index) override;

 private:
  LlmEngine& engine_;
  const LanguageModel& cpu_;
  int seq_ = -1;
  int64_t capacity_ = 0;
};

}  // namespace vila
