// Whole-file reads through zlib's gz* interface: gzip files (single or multi-member, dictzip
// included: its random-access table is an ordinary gzip extra field) and, transparently, plain
// files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace vila::data {

// The decompressed bytes. NotFound for a missing file; DataLoss naming the file on a truncated or
// corrupt stream (zlib checks the CRC at the end of each member); ResourceExhausted when the
// output would exceed `max_bytes`.
StatusOr<std::vector<uint8_t>> read_gzip_file(const std::string& path, uint64_t max_bytes);

// The first min(`max_bytes`, all) decompressed bytes; reading stops there without error (the
// rest of the file is not checked).
StatusOr<std::string> read_gzip_prefix(const std::string& path, uint64_t max_bytes);

}  // namespace vila::data
