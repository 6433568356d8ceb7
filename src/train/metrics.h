// Training metrics as JSON lines: one JSON object per line, e.g.
//   {"step": 120, "tokens": 245760, "time": 61.2, "loss": 2.3456, "lr": 0.0003}
// The writer appends and flushes after every record, so a crash loses at most the line being
// written. The reader returns (x, y) series by key and skips lines that do not parse (a truncated
// last line after a crash, a line glued onto one), counting them and keeping the first message.
//
// Values are numbers; a non-finite value (NaN / inf loss) is written as null, which the reader
// treats as absent. The conventional x keys are kStepKey, kTokensKey and kTimeKey.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace vila::train {

inline constexpr const char* kStepKey = "step";      // optimizer steps done
inline constexpr const char* kTokensKey = "tokens";  // training tokens seen
inline constexpr const char* kTimeKey = "time";      // seconds since the run started

// Appends records to a JSONL file. Move-only; closes the file on destruction.
class MetricsWriter {
 public:
  // Opens `path` for appending (creating it). If the file ends in a partial line (a crash while
  // writing), a newline is written first so that the next record starts on a line of its own.
  // `truncate` empties the file instead.
  static StatusOr<MetricsWriter> open(const std::string& path, bool truncate = false);

  // Writes one JSON object as one line and flushes. InvalidArgument unless `record` is an object.
  Status write(const nlohmann::json& record);
  // {"step": step, name: value, ...} in the given order.
  Status write(int64_t step, const std::vector<std::pair<std::string, double>>& values);

  const std::string& path() const { return path_; }

 private:
  struct FileCloser {
    void operator()(std::FILE* f) const;
  };
  MetricsWriter(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  Status write_line(const std::string& line);
  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
};

// Points of one key against an x key, in file order.
struct MetricsSeries {
  std::vector<double> x;
  std::vector<double> y;
  size_t size() const { return y.size(); }
};

// A metrics file read back.
class MetricsLog {
 public:
  // NotFound naming the file when it cannot be opened. Bad lines are skipped and counted.
  static StatusOr<MetricsLog> read(const std::string& path);
  // Parses JSONL text; `label` names the source in messages.
  static MetricsLog parse(const std::string& text, const std::string& label);

  const std::string& path() const { return path_; }
  const std::vector<nlohmann::json>& records() const { return records_; }
  // Lines that did not parse as a JSON object, and the first one's message ("path:line: ...").
  size_t skipped_lines() const { return skipped_; }
  const std::string& first_error() const { return first_error_; }

  // Keys that have a finite number in at least one record, sorted.
  std::vector<std::string> keys() const;
  bool has_key(const std::string& key) const;
  // (x, y) of every record where both keys hold finite numbers. When the step goes back (a run
  // resumed from an earlier checkpoint logs those steps again), the points from that step on are
  // replaced by the newer records. NotFound naming the file, the key and the keys present when
  // `y_key` or `x_key` has no finite value anywhere.
  StatusOr<MetricsSeries> series(const std::string& y_key,
                                 const std::string& x_key = kStepKey) const;

 private:
  std::string path_;
  std::vector<nlohmann::json> records_;
  size_t skipped_ = 0;
  std::string first_error_;
};

}  // namespace vila::train
