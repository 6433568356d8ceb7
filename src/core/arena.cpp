#include "core/arena.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace vila {

namespace {
constexpr size_t kAlign = 64;
size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Arena::Arena(std::string name, size_t block_bytes)
    : name_(std::move(name)), block_bytes_(block_bytes) {}

Arena::~Arena() {
  for (Block& b : blocks_) std::free(b.data);
}

Arena& Arena::operator=(Arena&& other) noexcept {
  if (this != &other) {
    for (Block& b : blocks_) std::free(b.data);
    name_ = std::move(other.name_);
    block_bytes_ = other.block_bytes_;
    blocks_ = std::move(other.blocks_);
    used_total_ = other.used_total_;
    other.blocks_.clear();
    other.used_total_ = 0;
  }
  return *this;
}

void* Arena::alloc(size_t bytes) {
  bytes = align_up(bytes == 0 ? 1 : bytes);
  if (blocks_.empty() || blocks_.back().used + bytes > blocks_.back().size) {
    const size_t size = std::max(block_bytes_, bytes);
    auto* data = static_cast<std::byte*>(std::aligned_alloc(kAlign, size));
    if (data == nullptr) throw std::bad_alloc();
    blocks_.push_back({data, size, 0});
  }
  Block& b = blocks_.back();
  std::byte* p = b.data + b.used;
  b.used += bytes;
  used_total_ += bytes;
  std::memset(p, 0, bytes);
  return p;
}

TensorView Arena::alloc_tensor(DType dtype, Shape shape) {
  const auto bytes = static_cast<size_t>(dtype_bytes(dtype, shape.numel()));
  return {alloc(bytes), dtype, shape};
}

void Arena::reset() {
  for (size_t i = 1; i < blocks_.size(); ++i) std::free(blocks_[i].data);
  if (!blocks_.empty()) {
    blocks_.resize(1);
    blocks_[0].used = 0;
  }
  used_total_ = 0;
}

size_t Arena::bytes_reserved() const {
  size_t n = 0;
  for (const Block& b : blocks_) n += b.size;
  return n;
}

}  // namespace vila
