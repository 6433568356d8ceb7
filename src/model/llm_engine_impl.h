// Internals of LlmEngine shared by llm_engine.cpp (weights, memory, sequences) and
// llm_engine_forward.cpp (prefill, decode, graphs). CUDA builds only; no CUDA headers.
#pragma once

#ifdef VILA_WITH_CUDA

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "backend/cuda/graph.h"
#include "backend/cuda/kv_pages.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "model/llm_engine.h"

namespace vila {

struct EngineLayer {
  const float* attn_norm = nullptr;  // (C) fp32
  const float* mlp_norm = nullptr;   // (C) fp32
  cuda::DeviceLinearWeight qkv;      // ((H + 2 Hkv) D, C), bias fp32 for Qwen2
  cuda::DeviceLinearWeight o;        // (C, H D)
  cuda::DeviceLinearWeight gate_up;  // (2F, C): gate rows, then up rows
  cuda::DeviceLinearWeight down;     // (C, F)
};

// One sequence slot: its pages (page j holds positions j*P .. j*P+P-1) and length.
struct EngineSequence {
  bool active = false;
  int64_t length = 0;
  std::vector<int32_t> pages;
};

// Scratch for `rows` tokens (the larger of max_chunk and max_batch), carved from one allocation.
struct EngineScratch {
  float* x = nullptr;              // (R, C) fp32 residual stream
  void* xn = nullptr;              // (R, C) dtype: normed GEMM input
  float* qkv = nullptr;            // (R, (H + 2 Hkv) D) fp32
  void* q = nullptr;               // (R, H D) dtype: rotated queries
  void* attn = nullptr;            // (R, H D) dtype: attention output
  void* gate_up = nullptr;         // (R, 2F) dtype
  void* act = nullptr;             // (R, F) dtype: silu(gate) * up
  float* logits = nullptr;         // (kLogitRows, V) fp32
  void* attn_ws = nullptr;         // decode attention workspace
  void* argmax_ws = nullptr;       // argmax_rows workspace (max_batch rows), kept zero
  int32_t* positions = nullptr;    // (R)
  int32_t* seq_ids = nullptr;      // (R): row of block_table
  int32_t* q_start = nullptr;      // (max_batch + 1)
  int32_t* kv_len = nullptr;       // (max_batch)
  int32_t* block_table = nullptr;  // (max_batch, max_pages)
  int32_t* tokens = nullptr;       // (max_batch) decode input ids
  int32_t* next = nullptr;         // (max_batch) picked ids
  uint64_t* step = nullptr;        // sampler counter
  float* inv_freq = nullptr;       // (D/2)
  float* rope_cos = nullptr;       // (max_seq, D/2): cos of every position's angles
  float* rope_sin = nullptr;       // (max_seq, D/2)
};

// The pinned host mirror of the small per-step arrays, uploaded in one copy.
struct EngineStepHost {
  int32_t* positions = nullptr;
  int32_t* seq_ids = nullptr;
  int32_t* q_start = nullptr;
  int32_t* kv_len = nullptr;
  int32_t* block_table = nullptr;
  int32_t* tokens = nullptr;
  int32_t* next = nullptr;
  uint64_t* step = nullptr;
};

struct LlmEngine::Impl {
  static constexpr int64_t kLogitRows = 64;  // logits computed per lm_head pass

  LlmConfig config;
  LlmEngineOptions options;
  cuda::Stream stream;
  std::unique_ptr<cuda::Blas> blas;
  cuda::DeviceBuffer weights;
  std::vector<EngineLayer> layers;
  const void* embed_table = nullptr;   // (V, C) dtype
  const float* output_norm = nullptr;  // (C)
  cuda::DeviceLinearWeight lm_head;    // (V, C)

  cuda::DeviceBuffer kv;  // per layer: K pool then V pool, (num_pages, Hkv, P, D) dtype each
  int64_t num_pages = 0;
  int max_pages = 0;  // per sequence: ceil(max_seq / P)
  std::vector<int32_t> free_pages;
  std::vector<EngineSequence> seqs;

  int64_t scratch_rows = 0;
  cuda::DeviceBuffer scratch_buffer;
  EngineScratch scratch;
  // Everything EngineStepHost points into, mirrored byte for byte by the device block starting
  // at scratch.positions (one upload per step).
  cuda::PinnedBuffer step_pinned;
  EngineStepHost host;
  size_t step_bytes = 0;
  std::vector<float> host_logits;

  std::map<int, cuda::Graph> decode_graphs;  // by batch size

  void* s() const { return stream.handle(); }
  int64_t qkv_width() const { return (config.n_heads + 2 * config.n_kv_heads) * config.head_dim; }
  size_t page_elems() const {
    return static_cast<size_t>(config.n_kv_heads * cuda::kKvPageSize * config.head_dim);
  }
  cuda::PagedKv layer_kv(int64_t layer) const;

  Status allocate_runtime();  // KV pool, scratch, pinned staging
  Status reserve_pages(int seq, int64_t new_length);
  Status upload_step();  // the pinned step block -> device (async)
  void fill_block_table_row(int row, int seq);

  // The layers over `rows` tokens whose x rows are set; prefill (rows of one sequence, batch 1)
  // or decode (one row per sequence, batch rows).
  Status run_layers(int rows, bool decode);
  Status logits_rows(const float* x_rows, int rows, float* out_device);  // (rows, V) fp32
  Status prefill_impl(int seq, const float* embeds, bool embeds_on_device, int64_t n, float* logits,
                      int64_t n_logits);
  Status decode_body(int batch);  // embedding -> layers -> logits (captured)
};

}  // namespace vila

#endif  // VILA_WITH_CUDA
