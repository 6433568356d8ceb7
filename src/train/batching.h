// EncodedSamples (train/encode.h) -> PackedBatch (train/batch.h): greedy packing in order.
//
// Each sample is appended whole to the open batch while the batch stays within max_tokens; the
// first sample that does not fit closes the batch (returned) and opens the next one. A sample is
// never split or reordered, so the output is a deterministic function of the input order.
// Within a batch: segments[t] = index of t's sample in the batch (0, 0, ..., 1, 1, ...),
// image i of the batch (in row order) has pixels[i] = its (3, S, S) tile from the ImageSource
// and media_rows[i * Ti + j] = (sample's first row in the batch) + image_rows[k] + j.
// Skipped, with counters and the first few messages for the log: samples longer than max_tokens
// (here or as encode_sample's OutOfRange), samples whose image does not load or preprocess (the
// whole sample goes), other encode errors reported through skip().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "train/batch.h"
#include "train/encode.h"
#include "train/image_source.h"

namespace vila::train {

struct BatchOptions {
  int64_t max_tokens = 0;        // T limit per batch, > 0
  int64_t tokens_per_image = 0;  // Ti, must equal the EncodeContext's
  size_t max_messages = 8;       // skip messages kept
};

struct SkipCounters {
  int64_t too_long = 0;               // longer than max_tokens (OutOfRange)
  int64_t image_errors = 0;           // an image failed to load or preprocess
  int64_t other = 0;                  // any other encode error passed to skip()
  std::vector<std::string> messages;  // the first max_messages, "Code: message"
  int64_t total() const { return too_long + image_errors + other; }
};

class BatchBuilder {
 public:
  // `images` must outlive the builder (it may be null when no sample has images).
  static StatusOr<BatchBuilder> create(const BatchOptions& options, const ImageSource* images);

  // Adds one sample; returns the batch it closed, if any. Skips (and counts) a sample that is
  // too long or whose images fail. InvalidArgument for a sample whose arrays disagree.
  StatusOr<std::optional<PackedBatch>> add(EncodedSample sample);
  // Counts a sample encode_sample refused (OutOfRange: too long; else other).
  void skip(const Status& why);
  // Closes the open batch; nullopt when it is empty.
  std::optional<PackedBatch> flush();

  const SkipCounters& skips() const { return skips_; }
  // Tokens in the open batch.
  int64_t pending_tokens() const { return open_.tokens(); }

 private:
  BatchBuilder(const BatchOptions& options, const ImageSource* images)
      : options_(options), images_(images) {}
  void note(const std::string& message);
  void reset_open();

  BatchOptions options_;
  const ImageSource* images_ = nullptr;
  PackedBatch open_;
  SkipCounters skips_;
};

// Encodes and packs all `samples` in order (the last partial batch included): a convenience for
// tests and small datasets. Skips land in `skips` when given.
StatusOr<std::vector<PackedBatch>> pack_samples(const std::vector<data::Sample>& samples,
                                                const EncodeContext& context,
                                                const BatchOptions& options,
                                                const ImageSource* images,
                                                SkipCounters* skips = nullptr);

}  // namespace vila::train
