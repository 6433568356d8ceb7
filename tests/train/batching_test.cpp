// BatchBuilder: greedy in-order packing of encoded Fashion-MNIST samples (caption, question,
// two-image compare, few-shot documents) into PackedBatch: boundaries, segments, targets, image
// rows and pixels, skip counters (too long, bad image) and determinism.
#include "train/batching.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/fashion_samples.h"
#include "fashion_test_util.h"
#include "train/packing.h"

namespace vila::train {
namespace {

namespace fs = std::filesystem;
using data::ImageRef;
using data::Role;
using data::Sample;
using data::Segment;

constexpr int64_t kTi = 4;  // visual rows per image in these tests (kept small)

using testing::synthetic_split;

PreprocessConfig small_tiles() {
  PreprocessConfig pre;
  pre.image_size = data::kFashionSide;  // 28: no resize, 3 x 28 x 28 floats per tile
  return pre;
}

class TrainBatching : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok =
        Tokenizer::load_dir((fs::path(VILA_FIXTURES_DIR) / "vision/nvila-lite/llm").string());
    ASSERT_TRUE(tok.ok()) << tok.status().to_string();
    tokenizer_ = std::move(*tok);
    ChatTemplate templ;
    templ.kind = ChatTemplateKind::kQwen2;
    auto ctx = make_encode_context(*tokenizer_, templ, small_tiles(), 0);
    ASSERT_TRUE(ctx.ok()) << ctx.status().to_string();
    ctx_ = *ctx;
    ctx_.tokens_per_image = kTi;
    split_ = synthetic_split(60, 21);
    data::FashionMix mix;
    mix.caption = 6;
    mix.question = 4;
    mix.compare = 4;
    mix.few_shot = 3;
    auto samples = data::build_fashion_mix(split_, mix, {});
    ASSERT_TRUE(samples.ok()) << samples.status().to_string();
    samples_ = std::move(*samples);
    for (const Sample& s : samples_) {
      auto enc = encode_sample(s, ctx_);
      ASSERT_TRUE(enc.ok()) << enc.status().to_string();
      encoded_.push_back(std::move(*enc));
    }
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  EncodeContext ctx_;
  data::FashionSplit split_;
  std::vector<Sample> samples_;
  std::vector<EncodedSample> encoded_;
};

std::vector<PackedBatch> pack(const std::vector<EncodedSample>& encoded, const BatchOptions& opt,
                              const ImageSource* images, SkipCounters* skips = nullptr) {
  auto builder = BatchBuilder::create(opt, images);
  EXPECT_TRUE(builder.ok()) << builder.status().to_string();
  std::vector<PackedBatch> out;
  for (const EncodedSample& s : encoded) {
    auto closed = builder->add(s);
    EXPECT_TRUE(closed.ok()) << closed.status().to_string();
    if (closed.ok() && *closed) out.push_back(std::move(**closed));
  }
  if (auto last = builder->flush()) out.push_back(std::move(*last));
  if (skips) *skips = builder->skips();
  return out;
}

TEST_F(TrainBatching, GreedyInOrderWithSegmentsTargetsImageRowsAndPixels) {
  FashionImageSource images(split_, small_tiles());
  int64_t longest = 0;
  for (const EncodedSample& s : encoded_) longest = std::max(longest, s.tokens());
  BatchOptions opt;
  opt.max_tokens = longest * 5 / 2 + 7;  // odd, two or three samples a batch
  opt.tokens_per_image = kTi;
  const std::vector<PackedBatch> batches = pack(encoded_, opt, &images);
  ASSERT_GT(batches.size(), 2u);

  size_t next = 0;  // next encoded sample expected
  const int32_t image_id = *ctx_.image_token_id;
  for (size_t b = 0; b < batches.size(); ++b) {
    const PackedBatch& batch = batches[b];
    ASSERT_LE(batch.tokens(), opt.max_tokens);
    ASSERT_EQ(batch.targets.size(), batch.ids.size());
    ASSERT_EQ(batch.segments.size(), batch.ids.size());
    EXPECT_TRUE(check_segments(batch.segments.data(), batch.tokens()).ok());
    EXPECT_EQ(batch.tokens_per_image, kTi);
    EXPECT_EQ(batch.image_size, data::kFashionSide);
    const int64_t tile = 3 * batch.image_size * batch.image_size;
    ASSERT_EQ(batch.pixels.size(), static_cast<size_t>(batch.image_count * tile));
    ASSERT_EQ(batch.media_rows.size(), static_cast<size_t>(batch.image_count * kTi));
    // Samples appear whole and in order; segment k is the k-th sample of the batch.
    int64_t offset = 0, image = 0;
    for (int64_t k = 0; k < batch.samples; ++k) {
      ASSERT_LT(next, encoded_.size());
      const EncodedSample& s = encoded_[next++];
      for (int64_t t = 0; t < s.tokens(); ++t) {
        ASSERT_EQ(batch.ids[offset + t], s.ids[t]);
        ASSERT_EQ(batch.targets[offset + t], s.targets[t]);
        ASSERT_EQ(batch.segments[offset + t], k);
      }
      // Nothing is trained across the boundary: the last token of a segment predicts nothing.
      EXPECT_EQ(batch.targets[offset + s.tokens() - 1], kIgnoreTarget);
      for (size_t i = 0; i < s.images.size(); ++i, ++image) {
        for (int64_t j = 0; j < kTi; ++j) {
          EXPECT_EQ(batch.media_rows[image * kTi + j], offset + s.image_rows[i] + j);
        }
        auto want = images.tile(s.images[i], s.origin);
        ASSERT_TRUE(want.ok());
        EXPECT_TRUE(std::equal(want->begin(), want->end(), batch.pixels.begin() + image * tile));
      }
      offset += s.tokens();
    }
    EXPECT_EQ(offset, batch.tokens());
    EXPECT_EQ(image, batch.image_count);
    // The media rows are exactly the placeholder rows, never trained or predicted.
    const std::set<int64_t> rows(batch.media_rows.begin(), batch.media_rows.end());
    EXPECT_EQ(rows.size(), batch.media_rows.size());
    for (int64_t t = 0; t < batch.tokens(); ++t) {
      EXPECT_EQ(batch.ids[t] == image_id, rows.count(t) == 1) << "row " << t;
      if (t + 1 < batch.tokens() && rows.count(t + 1)) {
        EXPECT_EQ(batch.targets[t], kIgnoreTarget);
      }
    }
    // Greedy: the next batch's first sample did not fit here.
    if (b + 1 < batches.size()) {
      EXPECT_GT(batch.tokens() + encoded_[next].tokens(), opt.max_tokens) << "batch " << b;
    }
  }
  EXPECT_EQ(next, encoded_.size());
}

TEST_F(TrainBatching, TwoImageCompareSampleHasOrderedRows) {
  const Sample* compare = nullptr;
  size_t index = 0;
  for (size_t i = 0; i < samples_.size() && !compare; ++i) {
    if (samples_[i].image_count() == 2 && samples_[i].kind == data::SampleKind::kConversation) {
      compare = &samples_[i];
      index = i;
    }
  }
  ASSERT_NE(compare, nullptr);
  const EncodedSample& s = encoded_[index];
  ASSERT_EQ(s.images.size(), 2u);
  EXPECT_EQ(s.images[0].index, compare->segments[0].image.index);
  EXPECT_EQ(s.images[1].index, compare->segments[1].image.index);
  // Two images: the multi-image path, "<image><image>..." with Ti rows + "\n" each, back to back.
  const int64_t newline = static_cast<int64_t>(tokenizer_->encode("\n").size());
  EXPECT_EQ(s.image_rows[1], s.image_rows[0] + kTi + newline);
  FashionImageSource images(split_, small_tiles());
  BatchOptions opt;
  opt.max_tokens = s.tokens();
  opt.tokens_per_image = kTi;
  const std::vector<PackedBatch> batches = pack({s}, opt, &images);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].image_count, 2);
  EXPECT_EQ(batches[0].samples, 1);
  EXPECT_EQ(batches[0].media_rows.front(), s.image_rows[0]);
  EXPECT_EQ(batches[0].media_rows.back(), s.image_rows[1] + kTi - 1);
}

TEST_F(TrainBatching, Deterministic) {
  FashionImageSource images(split_, small_tiles());
  BatchOptions opt;
  opt.max_tokens = 301;
  opt.tokens_per_image = kTi;
  SkipCounters skips_a, skips_b;
  auto a = pack_samples(samples_, ctx_, opt, &images, &skips_a);
  auto b = pack_samples(samples_, ctx_, opt, &images, &skips_b);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].ids, (*b)[i].ids);
    EXPECT_EQ((*a)[i].targets, (*b)[i].targets);
    EXPECT_EQ((*a)[i].segments, (*b)[i].segments);
    EXPECT_EQ((*a)[i].media_rows, (*b)[i].media_rows);
    EXPECT_EQ((*a)[i].pixels, (*b)[i].pixels);
  }
  EXPECT_EQ(skips_a.total(), skips_b.total());
}

TEST_F(TrainBatching, TooLongSamplesAreSkippedAndCounted) {
  FashionImageSource images(split_, small_tiles());
  // Longer than the batch limit: every two-image and few-shot sample.
  int64_t single = 0;
  int64_t too_long = 0;
  for (const EncodedSample& s : encoded_) {
    if (s.images.size() == 1) single = std::max(single, s.tokens());
  }
  for (const EncodedSample& s : encoded_) too_long += s.tokens() > single ? 1 : 0;
  ASSERT_GT(too_long, 0);
  BatchOptions opt;
  opt.max_tokens = single;
  opt.tokens_per_image = kTi;
  opt.max_messages = 2;
  SkipCounters skips;
  const std::vector<PackedBatch> batches = pack(encoded_, opt, &images, &skips);
  EXPECT_EQ(skips.too_long, too_long);
  EXPECT_EQ(skips.image_errors, 0);
  ASSERT_EQ(skips.messages.size(), 2u);
  EXPECT_NE(skips.messages[0].find("OutOfRange"), std::string::npos) << skips.messages[0];
  int64_t packed = 0;
  for (const PackedBatch& b : batches) packed += b.samples;
  EXPECT_EQ(packed + too_long, static_cast<int64_t>(encoded_.size()));
  // The same through encode's own limit: OutOfRange from encode_sample counts as too long.
  EncodeContext limited = ctx_;
  limited.max_tokens = single;
  SkipCounters via_encode;
  opt.max_tokens = 4 * single;
  auto packed_samples = pack_samples(samples_, limited, opt, &images, &via_encode);
  ASSERT_TRUE(packed_samples.ok()) << packed_samples.status().to_string();
  EXPECT_EQ(via_encode.too_long, too_long);
  std::string first_origin;
  for (const EncodedSample& s : encoded_) {
    if (s.tokens() > single && first_origin.empty()) first_origin = s.origin;
  }
  ASSERT_FALSE(via_encode.messages.empty());
  EXPECT_NE(via_encode.messages[0].find(first_origin), std::string::npos) << via_encode.messages[0];
}

TEST_F(TrainBatching, BadImagePathSkipsTheSampleWithItsPathAndOrigin) {
  FileImageSource files((fs::path(VILA_FIXTURES_DIR) / "vision/images").string(), small_tiles());
  std::vector<Sample> samples = {
      Sample{data::SampleKind::kConversation,
             {Segment::image_of(Role::kUser, ImageRef{"cat_40x50.jpg", -1}),
              Segment::text_of(Role::kUser, "What is this?"),
              Segment::text_of(Role::kAssistant, "A cat.")},
             "good.jsonl:1",
             -1},
      Sample{data::SampleKind::kConversation,
             {Segment::image_of(Role::kUser, ImageRef{"missing_cat.jpg", -1}),
              Segment::text_of(Role::kUser, "What is this?"),
              Segment::text_of(Role::kAssistant, "A cat.")},
             "bad.jsonl:7",
             -1},
      Sample{data::SampleKind::kDocument,
             {Segment::text_of(Role::kDocument, "Plain text is fine.")},
             "text:1",
             -1}};
  BatchOptions opt;
  opt.max_tokens = 1000;
  opt.tokens_per_image = kTi;
  SkipCounters skips;
  auto batches = pack_samples(samples, ctx_, opt, &files, &skips);
  ASSERT_TRUE(batches.ok()) << batches.status().to_string();
  EXPECT_EQ(skips.image_errors, 1);
  EXPECT_EQ(skips.too_long, 0);
  ASSERT_EQ(skips.messages.size(), 1u);
  EXPECT_NE(skips.messages[0].find("NotFound"), std::string::npos) << skips.messages[0];
  EXPECT_NE(skips.messages[0].find("missing_cat.jpg"), std::string::npos) << skips.messages[0];
  EXPECT_NE(skips.messages[0].find("bad.jsonl:7"), std::string::npos) << skips.messages[0];
  ASSERT_EQ(batches->size(), 1u);
  EXPECT_EQ((*batches)[0].samples, 2);
  EXPECT_EQ((*batches)[0].image_count, 1);
}

TEST_F(TrainBatching, BadOptionsAreInvalidArgument) {
  BatchOptions opt;
  opt.tokens_per_image = kTi;
  EXPECT_EQ(BatchBuilder::create(opt, nullptr).status().code(), StatusCode::kInvalidArgument);
  opt.max_tokens = 10;
  opt.tokens_per_image = 0;
  EXPECT_EQ(BatchBuilder::create(opt, nullptr).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::train
