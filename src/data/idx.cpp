#include "data/idx.h"

#include <cstdio>
#include <utility>

#include "data/gzip.h"

namespace vila::data {

namespace {

constexpr size_t kIdxHeaderBytes = 4;  // 0, 0, type, ndims
constexpr size_t kIdxDimBytes = 4;     // one big-endian uint32 per dimension

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

StatusOr<IdxArray> parse_idx(std::vector<uint8_t> bytes, const std::string& name) {
  if (bytes.size() < kIdxHeaderBytes) {
    return data_loss(name + ": " + std::to_string(bytes.size()) +
                     " bytes is too short for an IDX header");
  }
  if (bytes[0] != 0 || bytes[1] != 0) {
    return data_loss(name + ": not an IDX file (the magic number must start with two zero bytes)");
  }
  if (bytes[2] != kIdxTypeUint8) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "0x%02x", bytes[2]);
    return unimplemented(name + ": IDX element type " + buf +
                         " is not supported (only 0x08, unsigned byte)");
  }
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > kIdxMaxDims) {
    return data_loss(name + ": IDX dimension count " + std::to_string(ndims) +
                     " is out of range [1, " + std::to_string(kIdxMaxDims) + "]");
  }
  const size_t header = kIdxHeaderBytes + kIdxDimBytes * static_cast<size_t>(ndims);
  if (bytes.size() < header) {
    return data_loss(name + ": truncated IDX header (" + std::to_string(bytes.size()) +
                     " bytes, need " + std::to_string(header) + ")");
  }
  IdxArray out;
  uint64_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    const uint32_t size = read_be32(bytes.data() + kIdxHeaderBytes + kIdxDimBytes * d);
    out.dims.push_back(size);
    count *= size;
    if (count > kIdxMaxBytes) {
      return data_loss(name + ": IDX header claims more than " + std::to_string(kIdxMaxBytes) +
                       " elements");
    }
  }
  const uint64_t have = bytes.size() - header;
  if (have < count) {
    return data_loss(name + ": truncated IDX data (" + std::to_string(have) + " of " +
                     std::to_string(count) + " bytes)");
  }
  if (have > count) {
    return data_loss(name + ": " + std::to_string(have - count) +
                     " unexpected bytes after the IDX data");
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  out.data = std::move(bytes);
  return out;
}

StatusOr<IdxArray> read_idx(const std::string& path) {
  // The header bounds the data at kIdxMaxBytes; allow the header on top of that.
  constexpr uint64_t kMaxHeader = kIdxHeaderBytes + kIdxDimBytes * kIdxMaxDims;
  VILA_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                        read_gzip_file(path, kIdxMaxBytes + kMaxHeader));
  return parse_idx(std::move(bytes), path);
}

}  // namespace vila::data
