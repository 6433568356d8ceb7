// Typed, non-throwing access to JSON config files. nlohmann::json may throw on parse errors; this
// file catches them and turns them into Status values so nothing escapes the library.
#include "format/json_config.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/mapped_file.h"
#include "format/safetensors_internal.h"

namespace vila {

namespace internal {

std::string json_error_text(const char* what) {
  const char* text = what;
  if (text[0] == '[') {
    const char* close = std::strstr(text, "] ");
    if (close != nullptr) text = close + 2;
  }
  return text;
}

}  // namespace internal

namespace {

using nlohmann::json;

std::string field_prefix(const JsonFile& file, const std::string& key) {
  return file.path + ": field '" + key + "'";
}

Status wrong_type(const JsonFile& file, const std::string& key, const char* expected,
                  const json& value) {
  std::string got = value.type_name();
  if (value.is_number() || value.is_boolean()) {
    got += ' ';
    got += value.dump();
  }
  return invalid_argument(field_prefix(file, key) + " must be " + expected + ", got " + got);
}

// Looks up `key`; nullptr when `obj` is an object without it. An `obj` that is not an object is
// an error of its own.
StatusOr<const json*> find(const JsonFile& file, const json& obj, const std::string& key) {
  if (!obj.is_object()) {
    return invalid_argument(file.path + ": expected an object holding field '" + key + "', got " +
                            std::string(obj.type_name()));
  }
  auto it = obj.find(key);
  if (it == obj.end()) return static_cast<const json*>(nullptr);
  return &*it;
}

StatusOr<const json*> find_required(const JsonFile& file, const json& obj, const std::string& key) {
  VILA_ASSIGN_OR_RETURN(const json* value, find(file, obj, key));
  if (value == nullptr) return invalid_argument(field_prefix(file, key) + " missing");
  return value;
}

// Integers; an integral float such as 4096.0 or 1e6 is accepted too.
StatusOr<int64_t> to_int(const JsonFile& file, const std::string& key, const json& value) {
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return invalid_argument(field_prefix(file, key) + " is out of range: " + value.dump());
    }
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    const double d = value.get<double>();
    // 2^63 is exactly representable; values in [-2^63, 2^63) convert without overflow.
    if (std::isfinite(d) && d == std::floor(d) && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0) {
      return static_cast<int64_t>(d);
    }
    return wrong_type(file, key, "an integer", value);
  }
  return wrong_type(file, key, "an integer", value);
}

StatusOr<double> to_number(const JsonFile& file, const std::string& key, const json& value) {
  if (!value.is_number()) return wrong_type(file, key, "a number", value);
  return value.get<double>();
}

StatusOr<std::string> to_string_value(const JsonFile& file, const std::string& key,
                                      const json& value) {
  if (!value.is_string()) return wrong_type(file, key, "a string", value);
  return value.get<std::string>();
}

StatusOr<bool> to_bool(const JsonFile& file, const std::string& key, const json& value) {
  if (!value.is_boolean()) return wrong_type(file, key, "a boolean", value);
  return value.get<bool>();
}

}  // namespace

StatusOr<JsonFile> load_json_file(const std::string& path) {
  if (!file_exists(path)) return not_found(path + ": no such file");
  VILA_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  JsonFile file;
  file.path = path;
  try {
    file.json = json::parse(text);
  } catch (const json::parse_error& e) {
    return invalid_argument(path + ": malformed JSON at byte " + std::to_string(e.byte) + ": " +
                            internal::json_error_text(e.what()));
  } catch (const std::exception& e) {
    return invalid_argument(path + ": cannot parse JSON: " + e.what());
  }
  return file;
}

StatusOr<int64_t> json_int(const JsonFile& file, const json& obj, const std::string& key) {
  VILA_ASSIGN_OR_RETURN(const json* value, find_required(file, obj, key));
  return to_int(file, key, *value);
}

StatusOr<double> json_number(const JsonFile& file, const json& obj, const std::string& key) {
  VILA_ASSIGN_OR_RETURN(const json* value, find_required(file, obj, key));
  return to_number(file, key, *value);
}

StatusOr<std::string> json_string(const JsonFile& file, const json& obj, const std::string& key) {
  VILA_ASSIGN_OR_RETURN(const json* value, find_required(file, obj, key));
  return to_string_value(file, key, *value);
}

StatusOr<bool> json_bool(const JsonFile& file, const json& obj, const std::string& key) {
  VILA_ASSIGN_OR_RETURN(const json* value, find_required(file, obj, key));
  return to_bool(file, key, *value);
}

StatusOr<int64_t> json_int_or(const JsonFile& file, const json& obj, const std::string& key,
                              int64_t fallback) {
  VILA_ASSIGN_OR_RETURN(const json* value, find(file, obj, key));
  if (value == nullptr || value->is_null()) return fallback;
  return to_int(file, key, *value);
}

StatusOr<double> json_number_or(const JsonFile& file, const json& obj, const std::string& key,
                                double fallback) {
  VILA_ASSIGN_OR_RETURN(const json* value, find(file, obj, key));
  if (value == nullptr || value->is_null()) return fallback;
  return to_number(file, key, *value);
}

StatusOr<std::string> json_string_or(const JsonFile& file, const json& obj, const std::string& key,
                                     const std::string& fallback) {
  VILA_ASSIGN_OR_RETURN(const json* value, find(file, obj, key));
  if (value == nullptr || value->is_null()) return fallback;
  return to_string_value(file, key, *value);
}

StatusOr<bool> json_bool_or(const JsonFile& file, const json& obj, const std::string& key,
                            bool fallback) {
  VILA_ASSIGN_OR_RETURN(const json* value, find(file, obj, key));
  if (value == nullptr || value->is_null()) return fallback;
  return to_bool(file, key, *value);
}

}  // namespace vila
