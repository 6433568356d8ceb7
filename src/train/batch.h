// A packed training batch: several encoded samples share one row of T tokens (packing.h), with
// their images already preprocessed. Built by train/batching.h from data::Sample, consumed by the
// model's forward/backward (train/model/vlm.h).
//
// Token row (T): ids[t] is the input token at t. The rows that will receive visual features
// (media_rows) hold the tokenizer's image placeholder id (never embedded: the features overwrite
// them, train/media_splice.h). targets[t] is what position t must predict, already shifted:
// targets[t] = ids[t + 1] when t + 1 is a trained token of the same segment (assistant text of a
// conversation, every text token of a document), else kIgnoreIndex (-100).
// Images: N tiles of S x S, normalised (x - mean) / std as the vision tower's preprocessor says,
// channel-first. Image i's projected tokens go to rows media_rows[i * Ti + j], j < Ti, where
// Ti = tokens per image after the projector (the same for every image of a batch).
#pragma once

#include <cstdint>
#include <vector>

namespace vila::train {

struct PackedBatch {
  std::vector<int32_t> ids;       // (T) input token ids
  std::vector<int32_t> targets;   // (T) next-token targets, -100 where untrained
  std::vector<int32_t> segments;  // (T) sample index within the batch, non-decreasing

  int64_t image_count = 0;          // N
  int64_t image_size = 0;           // S
  std::vector<float> pixels;        // (N, 3, S, S) normalised
  int64_t tokens_per_image = 0;     // Ti
  std::vector<int64_t> media_rows;  // (N * Ti) rows of the token row, image-major

  int64_t samples = 0;  // segments in the batch

  int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
  int64_t trained_tokens() const {
    int64_t n = 0;
    for (int32_t t : targets) n += t >= 0 ? 1 : 0;
    return n;
  }
};

}  // namespace vila::train
