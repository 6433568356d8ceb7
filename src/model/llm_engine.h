// LlmEngine: the fast CUDA decoder (Qwen2 / Llama) — 16-bit weights, a paged KV cache shared by
// several sequences, batched decode captured in CUDA graphs, token selection on the GPU.
//
// Numerics (the "16-bit engine"; CudaLanguageModel in llm_cuda.h is the fp32 mirror of the CPU):
//   weights (linear, embeddings, lm_head) in dtype (bf16 or f16); norms and biases fp32;
//   residual stream fp32; every GEMM input rounded to dtype (rms_norm_to / silu_mul_to, or the
//   same rounding inside the GEMV prologues); GEMMs accumulate in fp32; q / K / V in dtype;
//   attention softmax in fp32. Fused layouts: qkv = [q; k; v] rows, gate_up = [gate; up] rows.
// Prefill (many tokens of one sequence) runs cuBLASLt GEMMs + the paged flash-attention kernel;
// decode (one token for each of up to max_batch sequences) runs the weight-streaming GEMV
// (batch <= 8) or cuBLASLt, flash-decoding, and is captured once per batch size in a CUDA graph.
//
// Dimensions as model/llm.cpp: C hidden, H heads, Hkv kv heads, D head dim, F intermediate,
// V vocab, L layers, P = cuda::kKvPageSize positions per page.
// In a build without CUDA, create() returns Unimplemented. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "model/llm.h"
#include "model/llm_config.h"
#include "runtime/sampler.h"

namespace vila {

struct LlmEngineOptions {
  DType dtype = DType::kBF16;  // kBF16 or kF16
  int max_batch = 8;           // sequences decoded in one step
  int64_t max_seq = 4096;      // positions per sequence
  int64_t num_pages = 0;       // KV pages in the pool; 0: max_batch * ceil(max_seq / P)
  int64_t max_chunk = 2048;    // prefill tokens per pass (bounds the activation memory)
  bool cuda_graphs = true;     // capture decode steps
  int device = 0;
  // Called while the weights upload: ("upload weights", fraction done).
  std::function<void(const std::string& stage, double fraction)> progress;
};

// Where the engine's device memory goes (bytes).
struct LlmEngineMemory {
  size_t weights = 0;
  size_t kv_cache = 0;
  size_t activations = 0;  // every scratch buffer (prefill chunk, logits, decode workspace)
  size_t workspace = 0;    // cuBLASLt workspace
  size_t total() const { return weights + kv_cache + activations + workspace; }
};

class LlmEngine {
 public:
  // Uploads the weights of a loaded CPU model (converted to options.dtype), with progress.
  static StatusOr<std::unique_ptr<LlmEngine>> create(const LanguageModel& cpu,
                                                     const LlmEngineOptions& options = {});
  // Random weights of the given geometry, generated on the device (benchmarks: no files, no host
  // copy). Values are small uniform numbers; the outputs are meaningless but finite.
  static StatusOr<std::unique_ptr<LlmEngine>> create_random(const LlmConfig& config,
                                                            const LlmEngineOptions& options,
                                                            uint64_t seed);
  ~LlmEngine();
  LlmEngine(const LlmEngine&) = delete;
  LlmEngine& operator=(const LlmEngine&) = delete;

  const LlmConfig& config() const;
  const LlmEngineOptions& options() const;
  LlmEngineMemory memory() const;

  // Sequences: slots 0 .. max_batch-1. A new sequence is empty; release() frees its pages.
  StatusOr<int> new_sequence();
  void release(int seq);
  int64_t length(int seq) const;
  Status truncate(int seq, int64_t n);  // keeps the first n positions

  // Appends n positions with input embeddings (n, C) host fp32 to sequence `seq`, writing the
  // logits of its last n_logits positions to logits (n_logits, V) host fp32 (may be null when
  // n_logits is 0). OutOfRange (sequence unchanged) past max_seq or when the page pool is full.
  Status prefill(int seq, const float* embeds, int64_t n, float* logits, int64_t n_logits);
  // The same with the embeddings already on the device ((n, C) fp32 device pointer).
  Status prefill_device(int seq, const float* embeds_device, int64_t n, float* logits,
                        int64_t n_logits);

  // One decode step for several sequences at once: feeds tokens[i] to seqs[i] (one position
  // each) and picks each next token on the GPU with `sampling` (greedy when temperature is 0).
  // next (size seqs.size()) receives the picked ids. logits, when not null, receives the step's
  // logits (seqs.size(), V) host fp32. `step` seeds the sampler's draw (advance it per step).
  Status decode(const std::vector<int>& seqs, const std::vector<int32_t>& tokens,
                const SamplingParams& sampling, uint64_t step, std::vector<int32_t>& next,
                float* logits = nullptr);

  // Device pointer of the token-embedding table ((V, C) of dtype) and an fp32 gather of rows
  // (host ids -> host (n, C)), for building prompts on the host.
  Status embed(const int32_t* ids, int64_t n, float* out) const;

  struct Impl;  // internal (llm_engine_impl.h)

 private:
  explicit LlmEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vila
