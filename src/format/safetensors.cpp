// SafetensorsFile: header parsing and validation. The header is untrusted input: every field is
// type-checked, all size arithmetic is overflow-checked, and every tensor's bytes must lie inside
// the data block without overlapping another tensor's.
#include "format/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "format/safetensors_internal.h"

namespace vila {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // same limit as the reference implementation

// Valid safetensors dtypes that this engine does not load: Unimplemented rather than DataLoss.
constexpr std::array<std::string_view, 10> kKnownUnsupportedDTypes = {
    "F64", "I16", "U16", "U32", "U64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};

std::string tensor_label(const std::string& name) { return "'" + name + "'"; }

// Reads a non-negative integer header field. nlohmann stores non-negative literals as unsigned
// and negative ones as signed; anything else (floats, strings, huge values) is a type error.
Status read_uint(const json& value, const std::string& where, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return ok_status();
  }
  if (value.is_number_integer()) return data_loss(where + " is negative");
  return data_loss(where + " must be a non-negative integer, got " +
                   std::string(value.type_name()));
}

struct ParsedTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Status parse_dtype(const std::string& prefix, const json& value, DType* out) {
  if (!value.is_string()) {
    return data_loss(prefix + "'dtype' must be a string, got " + std::string(value.type_name()));
  }
  const std::string& name = value.get_ref<const std::string&>();
  StatusOr<DType> dtype = dtype_from_safetensors(name);
  if (dtype.ok()) {
    *out = *dtype;
    return ok_status();
  }
  for (std::string_view known : kKnownUnsupportedDTypes) {
    if (name == known) return unimplemented(prefix + "dtype " + name + " is not supported");
  }
  return data_loss(prefix + "unknown dtype '" + name + "'");
}

Status parse_shape(const std::string& prefix, const json& value, Shape* out) {
  if (!value.is_array()) {
    return data_loss(prefix + "'shape' must be an array, got " + std::string(value.type_name()));
  }
  if (value.size() > static_cast<size_t>(kMaxDims)) {
    return unimplemented(prefix + "rank " + std::to_string(value.size()) +
                         " is not supported (at most " + std::to_string(kMaxDims) + " dims)");
  }
  Shape shape;
  for (size_t i = 0; i < value.size(); ++i) {
    uint64_t dim = 0;
    VILA_RETURN_IF_ERROR(read_uint(value[i], prefix + "shape[" + std::to_string(i) + "]", &dim));
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return data_loss(prefix + "shape[" + std::to_string(i) + "] is too large");
    }
    shape.dims[i] = static_cast<int64_t>(dim);
  }
  shape.rank = static_cast<int>(value.size());
  *out = shape;
  return ok_status();
}

Status parse_entry(const std::string& label, const std::string& name, const json& value,
                   ParsedTensor* out) {
  const std::string prefix = label + ": tensor " + tensor_label(name) + ": ";
  if (!value.is_object()) {
    return data_loss(prefix + "entry must be an object, got " + std::string(value.type_name()));
  }
  out->name = name;
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(field)) return data_loss(prefix + "missing '" + field + "'");
  }
  VILA_RETURN_IF_ERROR(parse_dtype(prefix, value["dtype"], &out->dtype));
  VILA_RETURN_IF_ERROR(parse_shape(prefix, value["shape"], &out->shape));
  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    return data_loss(prefix + "'data_offsets' must be an array of two integers");
  }
  VILA_RETURN_IF_ERROR(read_uint(offsets[0], prefix + "data_offsets[0]", &out->begin));
  VILA_RETURN_IF_ERROR(read_uint(offsets[1], prefix + "data_offsets[1]", &out->end));
  return ok_status();
}

Status parse_metadata(const std::string& label, const json& value,
                      std::map<std::string, std::string>* out) {
  if (!value.is_object()) {
    return data_loss(label + ": '__metadata__' must be an object of strings, got " +
                     std::string(value.type_name()));
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) {
      return data_loss(label + ": '__metadata__' value for " + tensor_label(it.key()) +
                       " must be a string, got " + std::string(it.value().type_name()));
    }
    (*out)[it.key()] = it.value().get<std::string>();
  }
  return ok_status();
}

std::string offsets_string(uint64_t begin, uint64_t end) {
  std::string s = "[";  // built by appending: GCC 12 warns (-Wrestrict) on "[" + std::string
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  s += ']';
  return s;
}

}  // namespace

namespace internal {

bool checked_tensor_bytes(DType dtype, const Shape& shape, uint64_t* out) {
  uint64_t numel = 1;
  for (int i = 0; i < shape.rank; ++i) {
    if (shape[i] < 0) return false;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(shape[i]), &numel)) return false;
  }
  if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  uint64_t bits = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_info(dtype).bits), &bits)) {
    return false;
  }
  *out = bits / 8 + (bits % 8 != 0 ? 1 : 0);
  return true;
}

}  // namespace internal

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  VILA_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> mapped, MappedFile::open(path));
  VILA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                        parse(mapped->data(), mapped->size(), path));
  file->file_ = std::move(mapped);
  return file;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(const uint8_t* data, size_t size,
                                                                  const std::string& label) {
  if (size < 8 || data == nullptr) {
    return data_loss(label + ": file too short for a safetensors header (" + std::to_string(size) +
                     " bytes, need at least 8)");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > kMaxHeaderBytes) {
    return data_loss(label + ": header length " + std::to_string(header_len) +
                     " exceeds the 100 MB limit (corrupt file?)");
  }
  if (header_len > size - 8) {
    return data_loss(label + ": header length " + std::to_string(header_len) +
                     " runs past the end of the file (" + std::to_string(size) +
                     " bytes; truncated?)");
  }
  const char* header_begin = reinterpret_cast<const char*>(data + 8);
  json header;
  try {
    header = json::parse(header_begin, header_begin + header_len);
  } catch (const json::parse_error& e) {
    return data_loss(label + ": header is not valid JSON at byte " + std::to_string(e.byte) + ": " +
                     internal::json_error_text(e.what()));
  } catch (const std::exception& e) {
    return data_loss(label + ": header could not be parsed: " + e.what());
  }
  if (!header.is_object()) {
    return data_loss(label + ": header must be a JSON object, got " +
                     std::string(header.type_name()));
  }

  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = label;
  const uint8_t* block = data + 8 + header_len;
  const uint64_t block_size = size - 8 - header_len;

  std::vector<ParsedTensor> tensors;
  tensors.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      VILA_RETURN_IF_ERROR(parse_metadata(label, it.value(), &file->metadata_));
      continue;
    }
    ParsedTensor t;
    VILA_RETURN_IF_ERROR(parse_entry(label, it.key(), it.value(), &t));
    const std::string prefix = label + ": tensor " + tensor_label(t.name) + ": ";
    uint64_t expected = 0;
    if (!internal::checked_tensor_bytes(t.dtype, t.shape, &expected)) {
      return data_loss(prefix + "shape " + t.shape.to_string() + " overflows the byte count");
    }
    if (t.end < t.begin) {
      return data_loss(prefix + "data_offsets " + offsets_string(t.begin, t.end) + " are reversed");
    }
    if (t.end > block_size) {
      return data_loss(prefix + "data_offsets " + offsets_string(t.begin, t.end) +
                       " run past the data block (" + std::to_string(block_size) +
                       " bytes; truncated?)");
    }
    if (t.end - t.begin != expected) {
      return data_loss(prefix + "data_offsets " + offsets_string(t.begin, t.end) + " hold " +
                       std::to_string(t.end - t.begin) + " bytes but " +
                       dtype_info(t.dtype).safetensors_name + " " + t.shape.to_string() +
                       " needs " + std::to_string(expected));
    }
    tensors.push_back(std::move(t));
  }

  // Reject overlapping byte ranges (an empty tensor may sit at any boundary, not inside another).
  std::vector<const ParsedTensor*> order;
  order.reserve(tensors.size());
  for (const ParsedTensor& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const ParsedTensor* a, const ParsedTensor* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const ParsedTensor* reach = nullptr;  // the tensor ending furthest so far
  for (const ParsedTensor* t : order) {
    if (reach != nullptr && t->begin < reach->end) {
      return data_loss(label + ": tensor " + tensor_label(t->name) + " (bytes " +
                       offsets_string(t->begin, t->end) + ") overlaps tensor " +
                       tensor_label(reach->name) + " (bytes " +
                       offsets_string(reach->begin, reach->end) + ")");
    }
    if (reach == nullptr || t->end > reach->end) reach = t;
  }

  for (ParsedTensor& t : tensors) {
    SafetensorsEntry entry;
    entry.name = t.name;
    entry.dtype = t.dtype;
    entry.shape = t.shape;
    entry.data = block + t.begin;
    entry.nbytes = static_cast<size_t>(t.end - t.begin);
    entry.file = label;
    file->entries_.emplace(std::move(t.name), std::move(entry));
  }
  return file;
}

}  // namespace vila
