#include <algorithm>
#include <utility>

#include "backend/cuda/ceilings.h"
#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/embedding.h"
#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"

namespace vila::cuda {

StatusOr<EventTimer> EventTimer::create() {
  EventTimer t;
  cudaEvent_t a = nullptr, b = nullptr;
  VILA_CUDA_CHECK(cudaEventCreate(&a));
  t.begin_ = a;
  VILA_CUDA_CHECK(cudaEventCreate(&b));
  t.end_ = b;
  return t;
}

EventTimer::~EventTimer() {
  if (begin_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(begin_));
  if (end_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(end_));
}

EventTimer::EventTimer(EventTimer&& other) noexcept
    : begin_(std::exchange(other.begin_, nullptr)), end_(std::exchange(other.end_, nullptr)) {}

EventTimer& EventTimer::operator=(EventTimer&& other) noexcept {
  if (this != &other) {
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
  }
  return *this;
}

Status EventTimer::start(void* stream) {
  VILA_CUDA_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(begin_), static_cast<cudaStream_t>(stream)));
  return ok_status();
}

StatusOr<double> EventTimer::stop_ms(void* stream) {
  VILA_CUDA_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(end_), static_cast<cudaStream_t>(stream)));
  VILA_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(end_)));
  float ms = 0;
  VILA_CUDA_CHECK(
      cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(begin_), static_cast<cudaEvent_t>(end_)));
  return static_cast<double>(ms);
}

StatusOr<double> copy_bandwidth_gbps(size_t bytes, int repeats) {
  VILA_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  VILA_ASSIGN_OR_RETURN(DeviceBuffer src, DeviceBuffer::create(bytes));
  VILA_ASSIGN_OR_RETURN(DeviceBuffer dst, DeviceBuffer::create(bytes));
  VILA_ASSIGN_OR_RETURN(EventTimer timer, EventTimer::create());
  VILA_RETURN_IF_ERROR(memset_device(src.data(), 1, bytes, stream.handle()));
  double best = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    VILA_RETURN_IF_ERROR(timer.start(stream.handle()));
    VILA_RETURN_IF_ERROR(copy_device_to_device(dst.data(), src.data(), bytes, stream.handle()));
    VILA_ASSIGN_OR_RETURN(const double ms, timer.stop_ms(stream.handle()));
    if (r > 0) best = std::min(best, ms);  // run 0 warms up
  }
  return 2.0 * static_cast<double>(bytes) / (best * 1e-3) / 1e9;
}

StatusOr<double> gemm_tflops(int64_t m, int64_t n, int64_t k, int repeats) {
  VILA_ASSIGN_OR_RETURN(Stream stream, Stream::create());
  VILA_ASSIGN_OR_RETURN(auto blas, Blas::create());
  VILA_ASSIGN_OR_RETURN(DeviceBuffer a, DeviceBuffer::create(static_cast<size_t>(m * k) * 2));
  VILA_ASSIGN_OR_RETURN(DeviceBuffer w, DeviceBuffer::create(static_cast<size_t>(n * k) * 2));
  VILA_ASSIGN_OR_RETURN(DeviceBuffer c, DeviceBuffer::create(static_cast<size_t>(m * n) * 2));
  VILA_RETURN_IF_ERROR(fill_uniform(a.data(), DType::kBF16, m * k, -1, 1, 1, stream.handle()));
  VILA_RETURN_IF_ERROR(fill_uniform(w.data(), DType::kBF16, n * k, -1, 1, 2, stream.handle()));
  DeviceLinearWeight dw;
  dw.weight = w.data();
  dw.dtype = DType::kBF16;
  dw.out_features = n;
  dw.in_features = k;
  LinearArgs args;
  args.out = c.data();
  args.out_dtype = DType::kBF16;
  args.in = a.data();
  args.rows = m;
  VILA_ASSIGN_OR_RETURN(EventTimer timer, EventTimer::create());
  double best = 1e30;
  for (int r = 0; r <= repeats; ++r) {
    VILA_RETURN_IF_ERROR(timer.start(stream.handle()));
    VILA_RETURN_IF_ERROR(linear(*blas, args, dw, stream.handle()));
    VILA_ASSIGN_OR_RETURN(const double ms, timer.stop_ms(stream.handle()));
    if (r > 0) best = std::min(best, ms);
  }
  return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) /
         (best * 1e-3) / 1e12;
}

StatusOr<size_t> device_memory_used() {
  size_t free_bytes = 0, total = 0;
  VILA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return total - free_bytes;
}

}  // namespace vila::cuda
