// Helpers shared by the golden tests (CPU, vision, CUDA): fixture discovery, comparisons, and a
// gtest-safe parameter name.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace vila::golden {

// Sorted names of the sub-folders of `VILA_FIXTURES_DIR/<group>` that hold a reference.json.
inline std::vector<std::string> fixture_names(const std::string& group) {
  namespace fs = std::filesystem;
  std::vector<std::string> names;
  const fs::path root = fs::path(VILA_FIXTURES_DIR) / group;
  if (!fs::exists(root)) return names;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "reference.json")) names.push_back(entry.path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// max |a - b| over n values; a NaN on either side gives infinity (never passes a bound).
inline double max_abs_diff(const float* a, const float* b, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

// A fixture name as a gtest parameter name ("nvila-qwen2-tied" -> "nvila_qwen2_tied").
inline std::string param_name(std::string name) {
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace vila::golden
