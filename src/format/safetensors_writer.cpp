// SafetensorsWriter: produces the same bytes as the Python safetensors library (compact JSON
// header, "__metadata__" first, tensors ordered by descending dtype alignment then name, data
// offsets contiguous, header padded with spaces to a multiple of 8 bytes).
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "format/safetensors_internal.h"

namespace vila {

namespace {

using nlohmann::json;

// Position of each dtype in the reference implementation's Dtype enum, which is declared in
// increasing alignment order; tensors are written highest first.
int alignment_rank(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return 0;
    case DType::kU8:
      return 1;
    case DType::kI8:
      return 2;
    case DType::kF8E5M2:
      return 3;
    case DType::kF8E4M3:
      return 4;
    case DType::kF16:
      return 7;
    case DType::kBF16:
      return 8;
    case DType::kI32:
      return 9;
    case DType::kF32:
      return 11;
    case DType::kI64:
      return 13;
    default:
      return -1;
  }
}

// JSON string literal for `s`, escaped as serde_json does; InvalidArgument on invalid UTF-8.
StatusOr<std::string> json_quote(const std::string& s, const char* what) {
  try {
    return json(s).dump();
  } catch (const std::exception& e) {
    return invalid_argument(std::string(what) + " '" + s + "' is not valid UTF-8");
  }
}

}  // namespace

Status SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape,
                              const void* data, size_t nbytes) {
  const std::string prefix = "safetensors writer: tensor '" + name + "': ";
  if (name == "__metadata__") return invalid_argument(prefix + "name is reserved");
  if (tensors_.count(name) != 0) return invalid_argument(prefix + "added twice");
  if (dtype_info(dtype).safetensors_name == nullptr || alignment_rank(dtype) < 0) {
    return invalid_argument(prefix + "dtype " + dtype_name(dtype) +
                            " cannot be stored in safetensors");
  }
  if (shape.rank < 0 || shape.rank > kMaxDims) return invalid_argument(prefix + "bad rank");
  uint64_t expected = 0;
  if (!internal::checked_tensor_bytes(dtype, shape, &expected)) {
    return invalid_argument(prefix + "shape " + shape.to_string() + " is invalid");
  }
  if (expected != nbytes) {
    return invalid_argument(prefix + dtype_name(dtype) + " " + shape.to_string() + " needs " +
                            std::to_string(expected) + " bytes, got " + std::to_string(nbytes));
  }
  if (nbytes != 0 && data == nullptr) return invalid_argument(prefix + "data is null");
  VILA_RETURN_IF_ERROR(json_quote(name, "tensor name").status());
  Pending pending{dtype, shape, {}};
  if (nbytes != 0) {
    const auto* bytes = static_cast<const uint8_t*>(data);
    pending.bytes.assign(bytes, bytes + nbytes);
  }
  tensors_.emplace(name, std::move(pending));
  return ok_status();
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

StatusOr<std::vector<uint8_t>> SafetensorsWriter::serialize() const {
  std::vector<std::pair<const std::string*, const Pending*>> order;
  order.reserve(tensors_.size());
  for (const auto& [name, pending] : tensors_) order.emplace_back(&name, &pending);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return alignment_rank(a.second->dtype) > alignment_rank(b.second->dtype);
  });  // stable: names stay sorted within one dtype

  std::string header = "{";
  if (!metadata_.empty()) {
    try {
      header += "\"__metadata__\":" + json(metadata_).dump();
    } catch (const std::exception& e) {
      return invalid_argument("safetensors writer: metadata is not valid UTF-8");
    }
  }
  uint64_t offset = 0;
  for (const auto& [name, pending] : order) {
    if (header.size() > 1) header += ',';
    VILA_ASSIGN_OR_RETURN(std::string quoted, json_quote(*name, "tensor name"));
    header +=
        quoted + ":{\"dtype\":\"" + dtype_info(pending->dtype).safetensors_name + "\",\"shape\":[";
    for (int i = 0; i < pending->shape.rank; ++i) {
      if (i != 0) header += ',';
      header += std::to_string(pending->shape[i]);
    }
    const uint64_t end = offset + pending->bytes.size();
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + offset);
  const uint64_t header_len = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(header_len >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const auto& [name, pending] : order) {
    out.insert(out.end(), pending->bytes.begin(), pending->bytes.end());
  }
  return out;
}

Status SafetensorsWriter::write(const std::string& path) const {
  StatusOr<std::vector<uint8_t>> bytes = serialize();
  if (!bytes.ok()) return bytes.status().with_context(path);
  return write_file_atomic(path, bytes->data(), bytes->size());
}

}  // namespace vila
