#include "data/gzip.h"

#include <zlib.h>

#include <algorithm>

#include "core/mapped_file.h"

namespace vila::data {

namespace {

constexpr uint64_t kGzipChunk = 1 << 20;  // bytes per gzread call

// Reads up to `limit` bytes into `out`; `more` is set when the stream has bytes past the limit.
Status read_gz(const std::string& path, uint64_t limit, std::vector<uint8_t>* out, bool* more) {
  if (!file_exists(path)) return not_found(path + ": no such file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return not_found(path + ": cannot open");
  Status status;
  *more = false;
  for (;;) {
    const size_t old = out->size();
    // One byte past the limit tells a file of exactly `limit` bytes from a longer one.
    const uint64_t want = std::min<uint64_t>(kGzipChunk, limit + 1 - old);
    out->resize(old + want);
    const int n = gzread(f, out->data() + old, static_cast<unsigned>(want));
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    if (n < 0 || (n == 0 && errnum != Z_OK)) {
      // A stream that stops inside a member reads as 0 bytes with Z_BUF_ERROR ("unexpected end
      // of file"); a bad CRC or bad deflate data gives -1 with Z_DATA_ERROR.
      status = data_loss(path + ": corrupt or truncated gzip data (" +
                         std::string(msg != nullptr ? msg : "unknown zlib error") + ")");
      out->resize(old);
      break;
    }
    out->resize(old + static_cast<size_t>(n));
    if (out->size() > limit) {
      out->resize(limit);
      *more = true;
      break;
    }
    if (n == 0) break;
  }
  gzclose(f);
  return status;
}

}  // namespace

StatusOr<std::vector<uint8_t>> read_gzip_file(const std::string& path, uint64_t max_bytes) {
  std::vector<uint8_t> out;
  bool more = false;
  VILA_RETURN_IF_ERROR(read_gz(path, max_bytes, &out, &more));
  if (more) {
    return resource_exhausted(path + ": more than " + std::to_string(max_bytes) +
                              " bytes when decompressed");
  }
  out.shrink_to_fit();
  return out;
}

StatusOr<std::string> read_gzip_prefix(const std::string& path, uint64_t max_bytes) {
  std::vector<uint8_t> out;
  bool more = false;
  VILA_RETURN_IF_ERROR(read_gz(path, max_bytes, &out, &more));
  return std::string(out.begin(), out.end());
}

}  // namespace vila::data
