// Shared by the model tests: random samples (text, images, placeholder rows) packed into a
// PackedBatch the way the data pipeline does (segments, shifted targets, media rows).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "train/batch.h"
#include "train/cross_entropy.h"
#include "train/model/vlm_config.h"

namespace vila::train::testing {

struct TestSample {
  std::vector<int32_t> ids;    // (t) with image_tokens placeholder rows per image
  std::vector<float> pixels;   // (n, 3, S, S)
  std::vector<int64_t> media;  // (n * Ti) rows inside the sample
  int64_t images = 0;
};

// `before` text tokens, `images` images (Ti placeholder rows each, `placeholder` id), `after`
// text tokens; text ids uniform in [1, vocab).
inline TestSample random_sample(const VlmConfig& c, std::mt19937& rng, int64_t before,
                                int64_t images, int64_t after, int32_t placeholder) {
  TestSample s;
  std::uniform_int_distribution<int32_t> tok(1, static_cast<int32_t>(c.llm.vocab - 1));
  std::uniform_real_distribution<float> px(-1.0f, 1.0f);
  for (int64_t i = 0; i < before; ++i) s.ids.push_back(tok(rng));
  const int64_t ti = c.tokens_per_image(), S = c.vision.image_size;
  for (int64_t n = 0; n < images; ++n) {
    for (int64_t j = 0; j < ti; ++j) {
      s.media.push_back(static_cast<int64_t>(s.ids.size()));
      s.ids.push_back(placeholder);
    }
    for (int64_t j = 0; j < c.vision.channels * S * S; ++j) s.pixels.push_back(px(rng));
  }
  for (int64_t i = 0; i < after; ++i) s.ids.push_back(tok(rng));
  s.images = images;
  return s;
}

// Samples packed in order; targets[t] = ids[t + 1] when t + 1 is a text token of the same sample.
inline PackedBatch pack(const VlmConfig& c, const std::vector<TestSample>& samples,
                        int32_t placeholder) {
  PackedBatch b;
  b.image_size = c.vision.image_size;
  b.tokens_per_image = c.tokens_per_image();
  for (size_t si = 0; si < samples.size(); ++si) {
    const TestSample& s = samples[si];
    const auto base = static_cast<int64_t>(b.ids.size());
    for (size_t t = 0; t < s.ids.size(); ++t) {
      b.ids.push_back(s.ids[t]);
      b.segments.push_back(static_cast<int32_t>(si));
      const bool next_text = t + 1 < s.ids.size() && s.ids[t + 1] != placeholder;
      b.targets.push_back(next_text ? s.ids[t + 1] : kIgnoreIndex);
    }
    for (int64_t r : s.media) b.media_rows.push_back(base + r);
    b.pixels.insert(b.pixels.end(), s.pixels.begin(), s.pixels.end());
    b.image_count += s.images;
  }
  b.samples = static_cast<int64_t>(samples.size());
  return b;
}

}  // namespace vila::train::testing
