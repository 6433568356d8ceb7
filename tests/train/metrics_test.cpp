// Metrics JSONL (train/metrics.h): round trip, truncated last lines after a crash (skipped,
// counted, and not glued onto the next record), resumed runs, missing files and keys.
#include "train/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "../common/temp_dir.h"
#include "core/mapped_file.h"

namespace vila::train {
namespace {

using vila::testing::TempDir;

TEST(Metrics, RoundTrip) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  {
    auto writer = MetricsWriter::open(path);
    ASSERT_TRUE(writer.ok()) << writer.status().to_string();
    for (int step = 1; step <= 5; ++step) {
      ASSERT_TRUE(writer->write(step, {{"tokens", step * 2048.0}, {"loss", 5.0 / step}}).ok());
    }
    ASSERT_TRUE(writer->write({{"step", 5}, {"eval_accuracy", 0.75}}).ok());
    // A NaN loss is written (as null) and read back as absent.
    ASSERT_TRUE(writer->write(6, {{"loss", std::nan("")}}).ok());
  }
  StatusOr<std::string> text = read_text_file(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->substr(0, text->find('\n')), R"({"step":1,"tokens":2048.0,"loss":5.0})");
  EXPECT_EQ(text->back(), '\n');

  auto log = MetricsLog::read(path);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  EXPECT_EQ(log->records().size(), 7u);
  EXPECT_EQ(log->skipped_lines(), 0u);
  EXPECT_EQ(log->keys(), (std::vector<std::string>{"eval_accuracy", "loss", "step", "tokens"}));
  auto loss = log->series("loss");
  ASSERT_TRUE(loss.ok());
  ASSERT_EQ(loss->size(), 5u);
  EXPECT_EQ(loss->x, (std::vector<double>{1, 2, 3, 4, 5}));
  EXPECT_DOUBLE_EQ(loss->y[3], 1.25);
  auto by_tokens = log->series("loss", kTokensKey);
  ASSERT_TRUE(by_tokens.ok());
  EXPECT_EQ(by_tokens->x.back(), 5 * 2048.0);
  auto acc = log->series("eval_accuracy");
  ASSERT_TRUE(acc.ok());
  EXPECT_EQ(acc->x, std::vector<double>{5});
  EXPECT_EQ(acc->y, std::vector<double>{0.75});
}

TEST(Metrics, TruncatedLastLineIsSkippedAndCounted) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  dir.write("metrics.jsonl",
            "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": 2}\n\n"
            "{\"step\": 3, \"lo");
  auto log = MetricsLog::read(path);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->records().size(), 2u);
  EXPECT_EQ(log->skipped_lines(), 1u);
  EXPECT_NE(log->first_error().find(path + ":4:"), std::string::npos) << log->first_error();
  auto loss = log->series("loss");
  ASSERT_TRUE(loss.ok());
  EXPECT_EQ(loss->y, (std::vector<double>{3, 2}));

  // Appending after the crash starts a new line: the partial one stays one bad line.
  {
    auto writer = MetricsWriter::open(path);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->write(3, {{"loss", 1.0}}).ok());
  }
  log = MetricsLog::read(path);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->records().size(), 3u);
  EXPECT_EQ(log->skipped_lines(), 1u);
  EXPECT_EQ(log->series("loss")->y, (std::vector<double>{3, 2, 1}));
}

TEST(Metrics, NonObjectLinesAreSkipped) {
  const MetricsLog log = MetricsLog::parse("[1, 2]\n{\"step\": 1, \"loss\": 1}\n42\n", "mem");
  EXPECT_EQ(log.records().size(), 1u);
  EXPECT_EQ(log.skipped_lines(), 2u);
  EXPECT_EQ(log.first_error(), "mem:1: not a JSON object");
}

TEST(Metrics, ResumedRunReplacesItsRedoneSteps) {
  std::string text;
  for (int step = 1; step <= 5; ++step) {
    text += "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(step) + "}\n";
  }
  for (int step = 3; step <= 6; ++step) {  // resumed from the checkpoint at step 2
    text +=
        "{\"step\": " + std::to_string(step) + ", \"loss\": " + std::to_string(10 * step) + "}\n";
  }
  auto loss = MetricsLog::parse(text, "mem").series("loss");
  ASSERT_TRUE(loss.ok());
  EXPECT_EQ(loss->x, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(loss->y, (std::vector<double>{1, 2, 30, 40, 50, 60}));
}

TEST(Metrics, TruncateOption) {
  TempDir dir;
  const std::string path = dir.file("m.jsonl");
  dir.write("m.jsonl", "{\"step\": 9, \"loss\": 9}\n");
  {
    auto writer = MetricsWriter::open(path, /*truncate=*/true);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->write(1, {{"loss", 1.0}}).ok());
  }
  EXPECT_EQ(MetricsLog::read(path)->records().size(), 1u);
}

TEST(Metrics, Errors) {
  TempDir dir;
  auto missing = MetricsLog::read(dir.file("none.jsonl"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("none.jsonl"), std::string::npos);

  const MetricsLog log = MetricsLog::parse("{\"step\": 1, \"loss\": 1}\n", "run.jsonl");
  auto unknown = log.series("accuracy");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("run.jsonl"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("'accuracy'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("keys: loss, step"), std::string::npos);
  EXPECT_FALSE(log.series("loss", kTimeKey).ok());

  auto bad_dir = MetricsWriter::open(dir.file("no/such/dir/m.jsonl"));
  ASSERT_FALSE(bad_dir.ok());
  EXPECT_NE(bad_dir.status().message().find("no/such/dir/m.jsonl"), std::string::npos);

  auto writer = MetricsWriter::open(dir.file("m.jsonl"));
  ASSERT_TRUE(writer.ok());
  Status not_object = writer->write(nlohmann::json::array({1, 2}));
  EXPECT_EQ(not_object.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::train
