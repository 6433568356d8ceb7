// What the file loaders (data/jsonl.h, data/text_sources.h) do with bad input, and what they
// report. A malformed record is named by "file:line" (or "file: item i" in a JSON array file) and
// either skipped and counted (kSkip) or returned as the error (kFail). A dataset with no usable
// sample is always an error.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"

namespace vila::data {

enum class OnBadRecord { kSkip, kFail };

struct LoadOptions {
  OnBadRecord on_bad_record = OnBadRecord::kSkip;
  // Folder that relative image paths are resolved against; empty: the data file's folder.
  std::string image_root;
  // Check that every image file exists at load time (a missing one makes the record bad).
  bool check_images = true;
  // Interleaved documents: keep only the first N entries of image_info (VILA keeps 6); 0 keeps all.
  size_t max_images_per_document = 0;
};

// Messages kept in LoadReport::errors (the counts are always complete).
constexpr size_t kMaxReportedErrors = 20;

struct LoadReport {
  size_t records = 0;               // non-blank lines / array items / paragraphs seen
  size_t loaded = 0;                // samples produced
  size_t skipped = 0;               // bad records skipped
  std::vector<std::string> errors;  // "file:line: message", the first kMaxReportedErrors

  // Adds another file's report.
  void merge(const LoadReport& other);
};

// Applies the policy to one bad record: under kSkip counts it, keeps its message (logged at debug
// level; callers summarise the report) and returns OK; under kFail returns `error` (whose message
// already names file:line).
Status handle_bad_record(const Status& error, const LoadOptions& options, LoadReport* report);

// InvalidArgument "<path>: no usable samples (N records, M skipped; first error: ...)".
Status empty_dataset_error(const std::string& path, const LoadReport& report);

}  // namespace vila::data
