#include "backend/cuda/cuda_common.cuh"
#include "backend/cuda/device.h"

namespace vila::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

StatusOr<DeviceInfo> device_info(int device) {
  cudaDeviceProp prop{};
  VILA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  DeviceInfo info;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.total_memory = prop.totalGlobalMem;
  return info;
}

Status set_device(int device) {
  VILA_CUDA_CHECK(cudaSetDevice(device));
  return {};
}

}  // namespace vila::cuda
