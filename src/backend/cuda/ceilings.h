// The GPU's measured ceilings, for benchmarks to report achieved fractions against:
//   copy_bandwidth_gbps  device-to-device cudaMemcpy of `bytes`, best of `repeats`, counting the
//                        bytes read plus the bytes written (GB/s = 1e9 B/s)
//   gemm_tflops          cuBLASLt bf16 x bf16 -> bf16 (fp32 accumulate) of m x n x k through
//                        cuda::linear, best of `repeats` (TFLOP/s, 2mnk FLOPs)
// Timed with CUDA events on a private stream after one warm-up.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace vila::cuda {

StatusOr<double> copy_bandwidth_gbps(size_t bytes, int repeats = 5);
StatusOr<double> gemm_tflops(int64_t m, int64_t n, int64_t k, int repeats = 5);

// Elapsed milliseconds between two points on a stream, measured with CUDA events; for host code
// that has no CUDA headers. start() records the first event, stop() the second and waits for it.
class EventTimer {
 public:
  static StatusOr<EventTimer> create();
  ~EventTimer();
  EventTimer(EventTimer&& other) noexcept;
  EventTimer& operator=(EventTimer&& other) noexcept;
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  Status start(void* stream);
  StatusOr<double> stop_ms(void* stream);

 private:
  EventTimer() = default;
  void* begin_ = nullptr;  // cudaEvent_t
  void* end_ = nullptr;
};

// Bytes of device memory in use on the current device (total - free, CUDA context included).
StatusOr<size_t> device_memory_used();

}  // namespace vila::cuda
