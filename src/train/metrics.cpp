// Metrics JSONL writer and reader (see metrics.h).
#include "train/metrics.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "core/mapped_file.h"

namespace vila::train {
namespace {

// A finite number held by `record[key]`, if any.
bool finite_number(const nlohmann::json& record, const std::string& key, double* out) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return false;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string join_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (const std::string& k : keys) s += (s.empty() ? "" : ", ") + k;
  return s.empty() ? "none" : s;
}

}  // namespace

void MetricsWriter::FileCloser::operator()(std::FILE* f) const {
  if (f != nullptr) std::fclose(f);
}

StatusOr<MetricsWriter> MetricsWriter::open(const std::string& path, bool truncate) {
  // "a+" appends every write at the end and still lets us read the last byte.
  std::FILE* f = std::fopen(path.c_str(), truncate ? "w" : "a+");
  if (f == nullptr) {
    return not_found(path + ": cannot open metrics file for writing: " + std::strerror(errno));
  }
  MetricsWriter writer(path, f);
  if (!truncate && std::fseek(f, 0, SEEK_END) == 0 && std::ftell(f) > 0) {
    // Terminate a partial last line left by a crash.
    if (std::fseek(f, -1, SEEK_END) == 0 && std::fgetc(f) != '\n') {
      std::fseek(f, 0, SEEK_END);
      if (std::fputc('\n', f) == EOF || std::fflush(f) != 0) {
        return data_loss(path + ": cannot write metrics: " + std::strerror(errno));
      }
    }
    std::fseek(f, 0, SEEK_END);
  }
  return writer;
}

Status MetricsWriter::write_line(const std::string& line) {
  if (std::fwrite(line.data(), 1, line.size(), file_.get()) != line.size() ||
      std::fflush(file_.get()) != 0) {
    return data_loss(path_ + ": cannot write metrics: " + std::strerror(errno));
  }
  return ok_status();
}

Status MetricsWriter::write(const nlohmann::json& record) {
  if (!record.is_object()) {
    return invalid_argument("MetricsWriter::write: a record must be a JSON object, got " +
                            std::string(record.type_name()));
  }
  // dump() writes NaN / inf as null; no newline can appear inside the dump.
  return write_line(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

Status MetricsWriter::write(int64_t step,
                            const std::vector<std::pair<std::string, double>>& values) {
  nlohmann::ordered_json record;  // keeps the caller's key order in the file
  record[kStepKey] = step;
  for (const auto& [name, value] : values) record[name] = value;
  return write_line(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

MetricsLog MetricsLog::parse(const std::string& text, const std::string& label) {
  MetricsLog log;
  log.path_ = label;
  size_t begin = 0;
  int64_t line_no = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank
    nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object()) {
      log.records_.push_back(std::move(record));
      continue;
    }
    if (log.skipped_++ == 0) {
      log.first_error_ =
          label + ":" + std::to_string(line_no) +
          (record.is_discarded() ? ": not valid JSON (truncated line?)" : ": not a JSON object");
    }
  }
  return log;
}

StatusOr<MetricsLog> MetricsLog::read(const std::string& path) {
  StatusOr<std::string> text = read_text_file(path);
  if (!text.ok()) return not_found(path + ": cannot read metrics file (no such file?)");
  return parse(*text, path);
}

std::vector<std::string> MetricsLog::keys() const {
  std::set<std::string> keys;
  for (const nlohmann::json& record : records_) {
    for (const auto& [key, value] : record.items()) {
      double v;
      if (finite_number(record, key, &v)) keys.insert(key);
    }
  }
  return {keys.begin(), keys.end()};
}

bool MetricsLog::has_key(const std::string& key) const {
  double v;
  return std::any_of(records_.begin(), records_.end(),
                     [&](const nlohmann::json& r) { return finite_number(r, key, &v); });
}

StatusOr<MetricsSeries> MetricsLog::series(const std::string& y_key,
                                           const std::string& x_key) const {
  for (const std::string* key : {&y_key, &x_key}) {
    if (!has_key(*key)) {
      return not_found(path_ + ": no numeric values for key '" + *key +
                       "' (keys: " + join_keys(keys()) + ")");
    }
  }
  MetricsSeries s;
  std::vector<double> steps;  // the step of each point kept; NaN when its record has none
  for (const nlohmann::json& record : records_) {
    double x, y;
    if (!finite_number(record, x_key, &x) || !finite_number(record, y_key, &y)) continue;
    double step = std::numeric_limits<double>::quiet_NaN();
    if (finite_number(record, kStepKey, &step)) {
      // A resumed run logs the steps after its checkpoint again: the newer records replace them.
      while (!steps.empty() && steps.back() >= step) {
        steps.pop_back();
        s.x.pop_back();
        s.y.pop_back();
      }
    }
    steps.push_back(step);
    s.x.push_back(x);
    s.y.push_back(y);
  }
  return s;
}

}  // namespace vila::train
