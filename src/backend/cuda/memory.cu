#include <utility>

#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/memory.h"

namespace vila::cuda {

StatusOr<DeviceBuffer> DeviceBuffer::create(size_t bytes) {
  DeviceBuffer buffer;
  if (bytes == 0) return buffer;
  const cudaError_t err = cudaMalloc(&buffer.data_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Status{StatusCode::kResourceExhausted,
                  "cudaMalloc of " + std::to_string(bytes) + " bytes: " + cudaGetErrorString(err)};
  }
  buffer.bytes_ = bytes;
  return buffer;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

StatusOr<PinnedBuffer> PinnedBuffer::create(size_t bytes) {
  PinnedBuffer buffer;
  if (bytes == 0) return buffer;
  const cudaError_t err = cudaMallocHost(&buffer.data_, bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return Status{StatusCode::kResourceExhausted, "cudaMallocHost of " + std::to_string(bytes) +
                                                      " bytes: " + cudaGetErrorString(err)};
  }
  buffer.bytes_ = bytes;
  return buffer;
}

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

StatusOr<MemoryInfo> memory_info() {
  MemoryInfo info;
  VILA_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
  return info;
}

StatusOr<Stream> Stream::create() {
  Stream stream;
  cudaStream_t s = nullptr;
  VILA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream.stream_ = s;
  return stream;
}

Stream::~Stream() {
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

Stream::Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

Status Stream::synchronize() const {
  VILA_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return {};
}

Status stream_wait(void* waiter, void* signaller) {
  cudaEvent_t event = nullptr;
  VILA_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(event, static_cast<cudaStream_t>(signaller));
  if (err == cudaSuccess) err = cudaStreamWaitEvent(static_cast<cudaStream_t>(waiter), event, 0);
  cudaEventDestroy(event);  // released once the wait no longer needs it
  VILA_CUDA_CHECK(err);
  return {};
}

Status copy_to_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return {};
  VILA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
  return {};
}

Status copy_to_host(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return {};
  const auto s = static_cast<cudaStream_t>(stream);
  VILA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s));
  VILA_CUDA_CHECK(cudaStreamSynchronize(s));
  return {};
}

Status copy_device_to_device(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return {};
  VILA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                  static_cast<cudaStream_t>(stream)));
  return {};
}

Status copy_to_device_async(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return {};
  VILA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)));
  return {};
}

Status copy_to_host_async(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return {};
  VILA_CUDA_CHECK(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream)));
  return {};
}

Status memset_device(void* dst, int value, size_t bytes, void* stream) {
  if (bytes == 0) return {};
  VILA_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, static_cast<cudaStream_t>(stream)));
  return {};
}

}  // namespace vila::cuda
