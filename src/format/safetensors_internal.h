// Helpers shared by the safetensors reader, writer and JSON config code (not a public API).
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace vila::internal {

// Bytes taken by a tensor of `dtype` and `shape`; false on a negative dim or on overflow.
bool checked_tensor_bytes(DType dtype, const Shape& shape, uint64_t* out);

// nlohmann's exception text without its "[json.exception.parse_error.101] " prefix.
std::string json_error_text(const char* what);

}  // namespace vila::internal
