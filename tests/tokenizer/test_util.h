// Helpers shared by the tokenizer tests: temporary folders and JSON-lines files.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../common/temp_dir.h"

namespace vila::testing {

inline bool read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// One parsed JSON value per non-empty line; false if the file is missing or a line is malformed.
inline bool read_jsonl(const std::string& path, std::vector<nlohmann::json>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return false;
    out->push_back(std::move(j));
  }
  return true;
}

}  // namespace vila::testing
