// VlmModel: the whole VILA-architecture VLM as a trainable model (llm.c style, no autograd).
//
// forward_backward(batch):
//   feats  = projector(vision_tower(pixels))           (N, Ti, H)   vision_tower.h, projector.h
//   logits = llm(ids, segments, feats at media_rows)   (T, V)       llm.h
//   loss   = cross_entropy(logits, targets)            train/cross_entropy.h
// then the backward of all three, accumulating into Param::grad (callers zero the grads between
// optimizer steps, so micro-batches accumulate). Frozen modules (Param::trainable false) get no
// parameter gradients; when the vision tower and the projector are both frozen the vision backward
// is skipped, and when everything is frozen there is no backward at all.
// Buffers (activations and scratch) live in the parts and are reused from call to call; they grow
// to the largest batch seen and never shrink.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "train/batch.h"
#include "train/model/vlm_config.h"
#include "train/model/vlm_llm.h"
#include "train/model/vlm_projector.h"
#include "train/model/vlm_vision_tower.h"
#include "train/params.h"
#include "train/precision.h"

namespace vila::train {

struct TrainOptions {
  LinearPrecision precision;  // every Linear's three GEMMs (default: fp32)
  // Cross-entropy divides by this (the trained tokens of the whole accumulated batch); 0: this
  // batch's trained tokens.
  int64_t normalizer = 0;
  float grad_scale = 1.0f;   // scales the gradients (not the loss), e.g. for loss scaling
  bool keep_logits = false;  // return the logits in StepResult
};

struct StepResult {
  double loss = 0.0;          // mean cross-entropy over the counted tokens (or the normalizer)
  int64_t counted = 0;        // trained tokens of this batch
  std::vector<float> logits;  // (T, V) when TrainOptions::keep_logits
};

// OK when `batch` fits `config` (token row, targets, segments, image geometry, media rows);
// InvalidArgument naming the PackedBatch field otherwise.
Status check_packed_batch(const VlmConfig& config, const PackedBatch& batch);

class VlmModel {
 public:
  // Registers every parameter of `config` in `store` (register_params: existing ones are kept, so
  // a store filled by load_released works) and binds the parts. `store` must outlive the model.
  static StatusOr<std::unique_ptr<VlmModel>> create(const VlmConfig& config, ParamStore& store);

  // Deterministic init of every parameter, independent of registration order: matrices and
  // embeddings ~ N(0, std²) from a generator seeded by (seed, full name), biases and norm shifts
  // 0, norm scales 1 (HF-like). Grads are zeroed.
  void init(uint64_t seed, float std = 0.02f);

  // Loss and the full backward (see the top). A non-finite loss is returned as is, with no
  // backward run (the gradients are left untouched) so the caller can skip or stop.
  // InvalidArgument for a batch that does not fit the config (naming the field).
  StatusOr<StepResult> forward_backward(const PackedBatch& batch, const TrainOptions& options);

  // Logits (T, V) only, no backward (evaluation).
  StatusOr<std::vector<float>> forward_logits(const PackedBatch& batch,
                                              const TrainOptions& options = {});

  const VlmConfig& config() const { return config_; }
  ParamStore& params() { return *store_; }

 private:
  VlmModel() = default;
  Status forward(const PackedBatch& batch, const LinearPrecision& precision);

  VlmConfig config_;
  ParamStore* store_ = nullptr;
  VisionTowerModel vision_;
  ProjectorModel projector_;
  LlmModel llm_;
  std::vector<float> dfeats_, dvision_;  // (N*Ti, H), (N, P, C) backward scratch
};

}  // namespace vila::train
