#include "data/load_options.h"

#include "core/logging.h"

namespace vila::data {

void LoadReport::merge(const LoadReport& other) {
  records += other.records;
  loaded += other.loaded;
  skipped += other.skipped;
  for (const std::string& e : other.errors) {
    if (errors.size() < kMaxReportedErrors) errors.push_back(e);
  }
}

Status handle_bad_record(const Status& error, const LoadOptions& options, LoadReport* report) {
  if (options.on_bad_record == OnBadRecord::kFail) return error;
  ++report->skipped;
  if (report->errors.size() < kMaxReportedErrors) {
    report->errors.push_back(error.message());
    VILA_LOG_DEBUG("skipped: " + error.message());
  }
  return ok_status();
}

Status empty_dataset_error(const std::string& path, const LoadReport& report) {
  std::string msg = path + ": no usable samples (" + std::to_string(report.records) + " records, " +
                    std::to_string(report.skipped) + " skipped";
  if (!report.errors.empty()) msg += "; first error: " + report.errors.front();
  return invalid_argument(msg + ")");
}

}  // namespace vila::data
