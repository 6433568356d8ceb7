// Arena: one allocation per lifetime class (weights, KV cache, scratch), as llm.c does.
// Allocations are bump-pointer, 64-byte aligned, and freed together by reset() or destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace vila {

class Arena {
 public:
  // `name` appears in error messages ("kv_cache arena exhausted ...").
  explicit Arena(std::string name, size_t block_bytes = size_t{64} << 20);
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) = default;
  // Frees this arena's own blocks before taking the other's (a defaulted move assignment would
  // leak them).
  Arena& operator=(Arena&& other) noexcept;
  ~Arena();

  // Returns zero-initialised, 64-byte aligned memory. Grows by whole blocks.
  void* alloc(size_t bytes);
  TensorView alloc_tensor(DType dtype, Shape shape);
  // Drops all allocations but keeps the first block for reuse.
  void reset();

  size_t bytes_used() const { return used_total_; }
  size_t bytes_reserved() const;
  const std::string& name() const { return name_; }

 private:
  struct Block {
    std::byte* data;
    size_t size;
    size_t used;
  };
  std::string name_;
  size_t block_bytes_;
  std::vector<Block> blocks_;
  size_t used_total_ = 0;
};

}  // namespace vila
