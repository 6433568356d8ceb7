// Greedy in-order packing of encoded samples into PackedBatch (see batching.h).
#include "train/batching.h"

#include <utility>

namespace vila::train {

StatusOr<BatchBuilder> BatchBuilder::create(const BatchOptions& options,
                                            const ImageSource* images) {
  if (options.max_tokens <= 0) {
    return invalid_argument("batching: max_tokens must be positive, got " +
                            std::to_string(options.max_tokens));
  }
  if (options.tokens_per_image <= 0) {
    return invalid_argument("batching: tokens_per_image must be positive, got " +
                            std::to_string(options.tokens_per_image));
  }
  BatchBuilder builder(options, images);
  builder.reset_open();
  return builder;
}

void BatchBuilder::reset_open() {
  open_ = PackedBatch{};
  open_.tokens_per_image = options_.tokens_per_image;
  open_.image_size = images_ ? images_->image_size() : 0;
}

void BatchBuilder::note(const std::string& message) {
  if (skips_.messages.size() < options_.max_messages) skips_.messages.push_back(message);
}

void BatchBuilder::skip(const Status& why) {
  if (why.ok()) return;
  if (why.code() == StatusCode::kOutOfRange) {
    ++skips_.too_long;
  } else {
    ++skips_.other;
  }
  note(why.to_string());
}

StatusOr<std::optional<PackedBatch>> BatchBuilder::add(EncodedSample sample) {
  const int64_t t_count = sample.tokens();
  const int64_t ti = options_.tokens_per_image;
  if (sample.targets.size() != sample.ids.size() ||
      sample.image_rows.size() != sample.images.size()) {
    return invalid_argument("batching: " + sample.origin + ": " +
                            std::to_string(sample.ids.size()) + " ids, " +
                            std::to_string(sample.targets.size()) + " targets, " +
                            std::to_string(sample.images.size()) + " images, " +
                            std::to_string(sample.image_rows.size()) + " image rows");
  }
  for (int64_t row : sample.image_rows) {
    if (row < 0 || row + ti > t_count) {
      return invalid_argument("batching: " + sample.origin + ": image rows [" +
                              std::to_string(row) + ", " + std::to_string(row + ti) +
                              ") outside its " + std::to_string(t_count) + " tokens");
    }
  }
  if (t_count == 0) return std::optional<PackedBatch>();
  if (t_count > options_.max_tokens) {
    skip(out_of_range("batching: " + sample.origin + " is " + std::to_string(t_count) +
                      " tokens, more than max_tokens " + std::to_string(options_.max_tokens)));
    return std::optional<PackedBatch>();
  }
  // Images first: a sample with a bad image is skipped whole.
  std::vector<float> pixels;
  if (!sample.images.empty()) {
    if (images_ == nullptr) {
      return invalid_argument("batching: " + sample.origin + " has images but no ImageSource");
    }
    const size_t tile_floats =
        3 * static_cast<size_t>(images_->image_size() * images_->image_size());
    pixels.reserve(tile_floats * sample.images.size());
    for (const data::ImageRef& ref : sample.images) {
      StatusOr<std::vector<float>> tile = images_->tile(ref, sample.origin);
      if (!tile.ok()) {
        ++skips_.image_errors;
        note(tile.status().to_string());
        return std::optional<PackedBatch>();
      }
      if (tile->size() != tile_floats) {
        return internal_error("batching: " + sample.origin + ": the image source gave " +
                              std::to_string(tile->size()) +
                              " floats, not 3 x S x S = " + std::to_string(tile_floats));
      }
      pixels.insert(pixels.end(), tile->begin(), tile->end());
    }
  }

  std::optional<PackedBatch> closed;
  if (open_.tokens() + t_count > options_.max_tokens) {
    closed = std::move(open_);
    reset_open();
  }
  // Append the sample as segment `open_.samples`.
  const int64_t offset = open_.tokens();
  const auto segment = static_cast<int32_t>(open_.samples);
  open_.ids.insert(open_.ids.end(), sample.ids.begin(), sample.ids.end());
  open_.targets.insert(open_.targets.end(), sample.targets.begin(), sample.targets.end());
  open_.segments.insert(open_.segments.end(), static_cast<size_t>(t_count), segment);
  for (int64_t first : sample.image_rows) {
    for (int64_t j = 0; j < ti; ++j) open_.media_rows.push_back(offset + first + j);
  }
  open_.pixels.insert(open_.pixels.end(), pixels.begin(), pixels.end());
  open_.image_count += static_cast<int64_t>(sample.images.size());
  ++open_.samples;
  return closed;
}

std::optional<PackedBatch> BatchBuilder::flush() {
  if (open_.samples == 0) return std::nullopt;
  std::optional<PackedBatch> closed = std::move(open_);
  reset_open();
  return closed;
}

StatusOr<std::vector<PackedBatch>> pack_samples(const std::vector<data::Sample>& samples,
                                                const EncodeContext& context,
                                                const BatchOptions& options,
                                                const ImageSource* images, SkipCounters* skips) {
  VILA_ASSIGN_OR_RETURN(BatchBuilder builder, BatchBuilder::create(options, images));
  std::vector<PackedBatch> batches;
  for (const data::Sample& sample : samples) {
    StatusOr<EncodedSample> encoded = encode_sample(sample, context);
    if (!encoded.ok()) {
      builder.skip(encoded.status());
      continue;
    }
    VILA_ASSIGN_OR_RETURN(std::optional<PackedBatch> batch,
                          builder.add(std::move(encoded).value()));
    if (batch) batches.push_back(std::move(*batch));
  }
  if (std::optional<PackedBatch> last = builder.flush()) batches.push_back(std::move(*last));
  if (skips != nullptr) *skips = builder.skips();
  return batches;
}

}  // namespace vila::train
