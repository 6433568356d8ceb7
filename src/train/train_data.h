// The data side of a training run (TrainConfig -> batches): samples from every configured source,
// the tokenizer (trained on the run's own text or loaded), every sample encoded once, and a
// resumable stream of packed batches.
//
// Sources: Fashion-MNIST training split (caption / question / compare / few-shot counts),
// conversation and interleaved JSONL files, and text (GCIDE, Brown or a file; text_samples of
// them). Images: in-memory Fashion-MNIST by index, files by path (both through the inference
// preprocessing of one tile, train/image_source.h).
// Stream: a SampleOrder (data/sample_order.h) over the encoded samples, packed greedily
// (train/batching.h). The sample that closed a batch is the first of the next one; its index is
// part of the stream's state, so state() / restore() continue with exactly the batch that would
// have come next.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/fashion_mnist.h"
#include "data/load_options.h"
#include "data/sample_order.h"
#include "data/samples.h"
#include "runtime/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/batching.h"
#include "train/encode.h"
#include "train/image_source.h"
#include "train/train_config.h"
#include "vision/preprocess.h"

namespace vila::train {

// Special tokens of a tokenizer trained for a run (ChatML + the image placeholder).
inline const std::vector<std::string>& run_special_tokens() {
  static const std::vector<std::string> kTokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                   "<image>"};
  return kTokens;
}

// Every sample of the configured sources, in source order (Fashion, JSONL files, text).
// The Fashion training split is loaded into *fashion when the config asks for it.
struct RunSamples {
  std::vector<data::Sample> samples;
  std::unique_ptr<data::FashionSplit> fashion;  // null when unused
  data::LoadReport report;                      // JSONL / text loading
};
StatusOr<RunSamples> load_run_samples(const TrainConfig& config);

// Trains a byte-level BPE of config.tokenizer_vocab ids on the samples' text (plus
// run_special_tokens()) and writes it into `dir` (tokenizer.json, tokenizer_config.json, ...).
Status train_run_tokenizer(const std::vector<data::Sample>& samples, int64_t vocab_size,
                           const std::string& dir);

// In-memory Fashion images by index, files by path.
class RunImageSource : public ImageSource {
 public:
  RunImageSource(const data::FashionSplit* fashion, const PreprocessConfig& config);
  int64_t image_size() const override { return config_.image_size; }
  StatusOr<std::vector<float>> tile(const data::ImageRef& image,
                                    const std::string& origin) const override;

 private:
  PreprocessConfig config_;
  std::unique_ptr<FashionImageSource> fashion_;
  FileImageSource files_;
};

// Encodes every sample; samples encode_sample refuses are counted in `skips` (too long, bad
// structure) and left out. InvalidArgument when nothing is left (naming the first reason).
StatusOr<std::vector<EncodedSample>> encode_all(const std::vector<data::Sample>& samples,
                                                const EncodeContext& context, SkipCounters* skips);

struct StreamState {
  data::LoaderState loader;
  int64_t carried = -1;  // sample index that opens the next batch, or -1
  nlohmann::json to_json() const;
  static StatusOr<StreamState> from_json(const nlohmann::json& j, const std::string& where);
};

class BatchStream {
 public:
  // `samples` and `images` must outlive the stream.
  static StatusOr<BatchStream> create(const std::vector<EncodedSample>* samples,
                                      const ImageSource* images, const BatchOptions& options,
                                      uint64_t seed);
  // Continues from a saved state (InvalidArgument if it was saved for another dataset size).
  Status restore(const StreamState& state);
  // The next packed batch (epochs roll over; never empty).
  StatusOr<PackedBatch> next();
  StreamState state() const;
  uint64_t epoch() const { return order_->epoch(); }
  const SkipCounters& skips() const { return builder_->skips(); }

 private:
  const std::vector<EncodedSample>* samples_ = nullptr;
  const ImageSource* images_ = nullptr;
  BatchOptions options_;
  std::optional<data::SampleOrder> order_;
  std::optional<BatchBuilder> builder_;
  int64_t carried_ = -1;
};

}  // namespace vila::train
