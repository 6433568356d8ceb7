// IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or plain.
//
// Layout (big-endian): two zero bytes, a type byte (0x08 = unsigned byte, the only type these
// datasets use and the only one supported), a dimension count d, then d uint32 sizes, then the
// prod(sizes) elements in row-major order. Nothing may follow the data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace vila::data {

// IDX type byte of unsigned 8-bit data.
constexpr uint8_t kIdxTypeUint8 = 0x08;
// A larger dimension count is not a real IDX file.
constexpr int kIdxMaxDims = 4;
// Refuse files whose header claims more data than this (a corrupt header, not a real dataset).
constexpr uint64_t kIdxMaxBytes = uint64_t{1} << 32;

struct IdxArray {
  std::vector<uint32_t> dims;  // e.g. {60000, 28, 28}
  std::vector<uint8_t> data;   // prod(dims) bytes, row-major
};

// Reads `path` (gzip or plain: zlib reads plain files transparently). Errors name the file:
// NotFound (missing), DataLoss (truncated / corrupt gzip, bad magic, size mismatch, trailing
// bytes), Unimplemented (an element type other than unsigned byte).
StatusOr<IdxArray> read_idx(const std::string& path);

// Parses the bytes of an uncompressed IDX file; `name` prefixes errors.
StatusOr<IdxArray> parse_idx(std::vector<uint8_t> bytes, const std::string& name);

}  // namespace vila::data
