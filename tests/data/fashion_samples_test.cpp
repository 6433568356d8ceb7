// The Fashion-MNIST sample builders: deterministic, balanced, answers that match the labels, and
// held-out samples that only use held-out images.
#include "data/fashion_samples.h"

#include <gtest/gtest.h>

#include <array>
#include <set>

#include "data_test_util.h"

namespace vila::data {
namespace {

using testing::fashion;

constexpr size_t kCount = 200;

std::vector<Sample> build(FashionTask task, uint64_t seed, const FashionSplit& split,
                          size_t count = kCount, FashionSampleOptions options = {}) {
  options.seed = seed;
  auto s = build_fashion_samples(split, task, count, options);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? std::move(s).value() : std::vector<Sample>{};
}

std::string dump(const std::vector<Sample>& samples) {
  nlohmann::json j = nlohmann::json::array();
  for (const Sample& s : samples) j.push_back(sample_to_json(s));
  return j.dump();
}

// The last text segment (the assistant's answer, or the few-shot query's label sentence).
std::string answer(const Sample& s) {
  for (auto it = s.segments.rbegin(); it != s.segments.rend(); ++it) {
    if (!it->is_image()) return it->text;
  }
  return "";
}

const std::array<FashionTask, kFashionTasks> kTasks = {
    FashionTask::kCaption, FashionTask::kQuestion, FashionTask::kCompare, FashionTask::kFewShot};

TEST(FashionSamples, DeterministicForASeed) {
  VILA_REQUIRE_FASHION();
  for (FashionTask task : kTasks) {
    const std::string a = dump(build(task, 7, fashion()->train));
    EXPECT_EQ(a, dump(build(task, 7, fashion()->train))) << fashion_task_name(task);
    EXPECT_NE(a, dump(build(task, 8, fashion()->train))) << fashion_task_name(task);
  }
}

TEST(FashionSamples, BalancedClassesAndAnswers) {
  VILA_REQUIRE_FASHION();
  for (FashionTask task : kTasks) {
    const std::vector<Sample> samples = build(task, 1, fashion()->train, 205);
    std::array<int, kFashionClasses> per_class{};
    int yes = 0, no = 0;
    for (const Sample& s : samples) {
      ASSERT_GE(s.label, 0);
      ++per_class[static_cast<size_t>(s.label)];
      const std::string a = answer(s);
      yes += a.rfind("Yes", 0) == 0;
      no += a.rfind("No", 0) == 0;
    }
    for (int c = 0; c < kFashionClasses; ++c) {
      EXPECT_TRUE(per_class[c] == 20 || per_class[c] == 21)
          << fashion_task_name(task) << " class " << c << ": " << per_class[c];
    }
    if (task == FashionTask::kCompare) {
      EXPECT_LE(std::abs(yes - no), 1) << yes << " yes, " << no << " no";
      EXPECT_EQ(yes + no, 205);
    }
    if (task == FashionTask::kQuestion) {
      EXPECT_LE(std::abs(yes - no), 1) << yes << " yes, " << no << " no";
      EXPECT_GT(yes, 50);
    }
  }
}

TEST(FashionSamples, AnswersMatchTheImages) {
  VILA_REQUIRE_FASHION();
  const FashionSplit& split = fashion()->train;
  for (const Sample& s : build(FashionTask::kCaption, 3, split)) {
    ASSERT_EQ(s.kind, SampleKind::kConversation);
    ASSERT_EQ(s.segments.size(), 3u);
    EXPECT_TRUE(s.segments[0].is_image());
    EXPECT_EQ(s.segments[0].role, Role::kUser);
    EXPECT_EQ(split.label(s.segments[0].image.index), s.label);
    EXPECT_EQ(s.segments[2].role, Role::kAssistant);
    EXPECT_EQ(classify_answer(s.segments[2].text), s.label) << s.segments[2].text;
  }
  for (const Sample& s : build(FashionTask::kCompare, 3, split)) {
    ASSERT_EQ(s.image_count(), 2u);
    const int a = split.label(s.segments[0].image.index);
    const int b = split.label(s.segments[1].image.index);
    EXPECT_NE(s.segments[0].image.index, s.segments[1].image.index);
    EXPECT_EQ(answer(s).rfind(a == b ? "Yes" : "No", 0), 0u) << answer(s);
  }
  for (const Sample& s : build(FashionTask::kQuestion, 3, split)) {
    ASSERT_EQ(s.image_count(), 1u);
    const std::string q = s.segments[1].text, a = answer(s);
    if (a.find(", it is ") != std::string::npos) {  // "Is this a <class>?" -> "No, it is a bag."
      EXPECT_EQ(a.rfind(*classify_answer(q) == s.label ? "Yes" : "No", 0), 0u) << q << " " << a;
      EXPECT_EQ(classify_answer(a), s.label);
    }
    if (q == "Is this footwear?") {
      EXPECT_EQ(a, fashion_category(s.label) == FashionCategory::kFootwear ? "Yes." : "No.");
    }
  }
}

TEST(FashionSamples, FewShotDocuments) {
  VILA_REQUIRE_FASHION();
  FashionSampleOptions options;
  options.few_shot_k = 4;
  options.few_shot_include_query_class = true;
  const FashionSplit& split = fashion()->test;
  for (const Sample& s : build(FashionTask::kFewShot, 5, split, 50, options)) {
    ASSERT_EQ(s.kind, SampleKind::kDocument);
    ASSERT_EQ(s.segments.size(), 10u);  // (image, sentence) x (4 examples + query)
    bool hinted = false;
    for (size_t i = 0; i < s.segments.size(); i += 2) {
      ASSERT_TRUE(s.segments[i].is_image());
      ASSERT_FALSE(s.segments[i + 1].is_image());
      EXPECT_EQ(s.segments[i].role, Role::kDocument);
      const int shown = split.label(s.segments[i].image.index);
      EXPECT_EQ(classify_answer(s.segments[i + 1].text), shown) << s.segments[i + 1].text;
      hinted |= i + 2 < s.segments.size() && shown == s.label;
    }
    EXPECT_TRUE(hinted);
    EXPECT_EQ(split.label(s.segments[8].image.index), s.label);
  }
}

TEST(FashionSamples, HeldOutUsesOnlyHeldOutImagesAndMixes) {
  VILA_REQUIRE_FASHION();
  FashionMix mix;
  mix.caption = 30;
  mix.question = 20;
  mix.compare = 10;
  mix.few_shot = 5;
  auto samples = build_fashion_mix(fashion()->test, mix, {});
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  ASSERT_EQ(samples->size(), 65u);
  for (const Sample& s : *samples) {
    EXPECT_EQ(s.origin.rfind("fashion-mnist/t10k:", 0), 0u) << s.origin;
    for (const Segment& seg : s.segments) {
      if (seg.is_image()) {
        EXPECT_LT(seg.image.index, kFashionTestCount);
      }
    }
  }
  EXPECT_NE((*samples)[0].origin.find(":caption:"), std::string::npos);
  EXPECT_NE((*samples)[64].origin.find(":few_shot:"), std::string::npos);
  EXPECT_EQ(fashion_eval_answer(9), "An ankle boot.");
  EXPECT_STREQ(fashion_eval_prompt(), "What is this?");
}

TEST(FashionSamples, BadOptions) {
  VILA_REQUIRE_FASHION();
  FashionSampleOptions options;
  options.few_shot_k = 0;
  EXPECT_EQ(
      build_fashion_samples(fashion()->test, FashionTask::kFewShot, 1, options).status().code(),
      StatusCode::kInvalidArgument);
  FashionSplit tiny;
  tiny.name = "tiny";
  EXPECT_FALSE(build_fashion_samples(tiny, FashionTask::kCaption, 1, {}).ok());
  EXPECT_TRUE(parse_fashion_task("few_shot").ok());
  EXPECT_FALSE(parse_fashion_task("colour").ok());
}

TEST(Samples, JsonRoundTrip) {
  Sample s;
  s.kind = SampleKind::kConversation;
  s.origin = "x.jsonl:3";
  s.label = 4;
  ImageRef file;
  file.path = "a.png";
  ImageRef mem;
  mem.index = 12;
  s.segments = {Segment::image_of(Role::kUser, file), Segment::image_of(Role::kUser, mem),
                Segment::text_of(Role::kUser, "Same?"), Segment::text_of(Role::kAssistant, "No.")};
  auto back = sample_from_json(sample_to_json(s), "here");
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(sample_to_json(*back), sample_to_json(s));
  EXPECT_EQ(back->flat_text(), "<image><image>Same?No.");
  EXPECT_FALSE(
      sample_from_json({{"kind", "poem"}, {"segments", nlohmann::json::array()}}, "w").ok());
  EXPECT_FALSE(parse_role("narrator").ok());
}

}  // namespace
}  // namespace vila::data
