// Device memory and streams, callable from plain C++ (no CUDA headers): DeviceBuffer (RAII
// cudaMalloc/cudaFree), Stream (RAII cudaStream_t), and checked host<->device copies.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

// Owns `bytes` of device memory (cudaMalloc: 256-byte aligned). Move-only; empty when default
// constructed or moved from.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static StatusOr<DeviceBuffer> create(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }
  bool empty() const { return data_ == nullptr; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Owns `bytes` of page-locked host memory (cudaMallocHost): the staging area for the small
// per-step uploads and downloads of decode, so they run asynchronously. Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static StatusOr<PinnedBuffer> create(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Device memory use of the current device, as cudaMemGetInfo reports it.
struct MemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
StatusOr<MemoryInfo> memory_info();

// Owns a non-blocking CUDA stream; handle() is a cudaStream_t.
class Stream {
 public:
  Stream() = default;
  static StatusOr<Stream> create();
  ~Stream();
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void* handle() const { return stream_; }
  Status synchronize() const;

 private:
  void* stream_ = nullptr;
};

// Work queued on `waiter` after this call starts once everything queued on `signaller` so far has
// finished (an event recorded on one, waited on by the other). Both are cudaStream_t.
Status stream_wait(void* waiter, void* signaller);

// Copies on `stream` (cudaStream_t or nullptr). Host memory is pageable, so they return once the
// host buffer may be reused (a device->host copy has landed).
Status copy_to_device(void* dst, const void* src, size_t bytes, void* stream);
Status copy_to_host(void* dst, const void* src, size_t bytes, void* stream);
Status copy_device_to_device(void* dst, const void* src, size_t bytes, void* stream);
// Asynchronous copies (no synchronisation): host memory should be pinned.
Status copy_to_device_async(void* dst, const void* src, size_t bytes, void* stream);
Status copy_to_host_async(void* dst, const void* src, size_t bytes, void* stream);
// Sets every byte to `value` (tests poison outputs with 0xff: NaN in fp32 and bf16).
Status memset_device(void* dst, int value, size_t bytes, void* stream);

}  // namespace vila::cuda
