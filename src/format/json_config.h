// Typed access to HF config.json files with errors that name the file and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/status.h"

namespace vila {

struct JsonFile {
  std::string path;  // for error messages
  nlohmann::json json;
};

// Reads and parses a JSON file: NotFound / InvalidArgument "<path>: malformed JSON at byte N: ...".
StatusOr<JsonFile> load_json_file(const std::string& path);

// Required fields: InvalidArgument "<path>: field 'hidden_size' missing" / "... must be an integer,
// got string". json_int also takes integral floats (4096.0); json_number takes integers too.
StatusOr<int64_t> json_int(const JsonFile& file, const nlohmann::json& obj, const std::string& key);
StatusOr<double> json_number(const JsonFile& file, const nlohmann::json& obj,
                             const std::string& key);
StatusOr<std::string> json_string(const JsonFile& file, const nlohmann::json& obj,
                                  const std::string& key);
StatusOr<bool> json_bool(const JsonFile& file, const nlohmann::json& obj, const std::string& key);
// Optional fields: the default if absent or null; an error if present with the wrong type.
StatusOr<int64_t> json_int_or(const JsonFile& file, const nlohmann::json& obj,
                              const std::string& key, int64_t fallback);
StatusOr<double> json_number_or(const JsonFile& file, const nlohmann::json& obj,
                                const std::string& key, double fallback);
StatusOr<std::string> json_string_or(const JsonFile& file, const nlohmann::json& obj,
                                     const std::string& key, const std::string& fallback);
StatusOr<bool> json_bool_or(const JsonFile& file, const nlohmann::json& obj, const std::string& key,
                            bool fallback);

}  // namespace vila
