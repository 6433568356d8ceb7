// CUDA device discovery, callable from plain C++ (no CUDA headers).
#pragma once

#include <string>

#include "core/status.h"

namespace vila::cuda {

struct DeviceInfo {
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  size_t total_memory = 0;
};

// Number of usable CUDA devices; 0 (not an error) when there is no driver or GPU.
int device_count();
StatusOr<DeviceInfo> device_info(int device);
// Makes `device` current for the calling thread (cudaSetDevice).
Status set_device(int device);

}  // namespace vila::cuda
