// Read-only memory mapping of a whole file (checkpoints are mmapped, never copied).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace vila {

class MappedFile {
 public:
  static StatusOr<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) text file, e.g. config.json.
StatusOr<std::string> read_text_file(const std::string& path);
bool file_exists(const std::string& path);
std::string path_join(const std::string& a, const std::string& b);
// Writes `bytes` to `path` through a temporary file in the same folder and an atomic rename, so a
// crash never leaves a half-written file where the old one was.
Status write_file_atomic(const std::string& path, const void* bytes, size_t size);

}  // namespace vila
