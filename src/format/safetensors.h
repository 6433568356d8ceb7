// safetensors checkpoint I/O.
//
// File layout: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the data block; offsets are relative to the data block.
//
// Reading mmaps the file; tensors are views into the mapping. A folder checkpoint is either one
// `model.safetensors` or shards listed in `model.safetensors.index.json` ("weight_map").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "core/tensor.h"

namespace vila {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  const uint8_t* data = nullptr;  // into the mapping
  size_t nbytes = 0;
  std::string file;  // path of the file holding it, for error messages

  TensorView view() const { return {const_cast<uint8_t*>(data), dtype, shape}; }
};

class SafetensorsFile {
 public:
  // Validates the whole header: length within the file, JSON well-formed, known dtypes, shapes of
  // rank <= 4, offsets inside the data block and consistent with dtype x shape.
  static StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  // Same validation on bytes already in memory (used by the fuzzer); `label` names the source in
  // error messages. The entries point into `data`, which must outlive the returned object.
  //
  // Errors: DataLoss for truncated or corrupt files (bad header length, malformed JSON, missing or
  // mistyped fields, unknown dtype, negative dims, offsets reversed / past the data block /
  // inconsistent with dtype x shape, overlapping tensors, non-string metadata); Unimplemented for
  // valid safetensors this engine cannot hold (dtypes such as F64, rank > 4). Gaps between
  // tensors and trailing bytes after the last one are tolerated.
  static StatusOr<std::unique_ptr<SafetensorsFile>> parse(const uint8_t* data, size_t size,
                                                          const std::string& label);

  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model folder (single file or sharded), by name.
class Checkpoint {
 public:
  // `dir` holds model.safetensors.index.json (+ the shards its "weight_map" names; each shard is
  // opened once), else model.safetensors, else any number of *.safetensors files (all are loaded).
  // NotFound for a missing folder, shard, or tensor listed in the index; DataLoss for corruption
  // or a tensor name present in two files.
  static StatusOr<std::unique_ptr<Checkpoint>> open_dir(const std::string& dir);
  // One explicit file.
  static StatusOr<std::unique_ptr<Checkpoint>> open_file(const std::string& path);

  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // NotFound "<dir>: missing tensor 'model.norm.weight'" if absent.
  StatusOr<const SafetensorsEntry*> get(const std::string& name) const;
  // Also checks the shape: InvalidArgument naming the tensor, file, expected and actual shapes.
  StatusOr<const SafetensorsEntry*> get(const std::string& name, const Shape& expected) const;
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }
  int64_t total_parameters() const;

 private:
  static StatusOr<std::unique_ptr<Checkpoint>> open_index(const std::string& dir,
                                                          const std::string& index_path);
  // Takes ownership of `file` and indexes its tensors; DataLoss on a name seen in another file.
  Status add_file(std::unique_ptr<SafetensorsFile> file);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsEntry*> entries_;
};

// Collects tensors and writes one safetensors file atomically (temp file + rename).
class SafetensorsWriter {
 public:
  // Copies the bytes. Fails on duplicate names or dtype/shape/size mismatch.
  Status add(const std::string& name, DType dtype, const Shape& shape, const void* data,
             size_t nbytes);
  void set_metadata(const std::string& key, const std::string& value);
  Status write(const std::string& path) const;
  // The whole file as `write` would store it: u64 header length, JSON header padded with spaces
  // to a multiple of 8 bytes, then the data. Tensors are laid out as the Python safetensors
  // library does: by descending dtype alignment, then by name, so every tensor stays aligned.
  StatusOr<std::vector<uint8_t>> serialize() const;

 private:
  struct Pending {
    DType dtype;
    Shape shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Pending> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace vila
