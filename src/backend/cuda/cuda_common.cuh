// Shared CUDA helpers: one checking macro that turns CUDA errors into Status values (library code
// never exits), ceil_div, and device queries.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/status.h"

namespace vila::cuda {

inline Status cuda_status(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return {};
  return {StatusCode::kInternal, std::string(file) + ":" + std::to_string(line) + ": " + expr +
                                     ": " + cudaGetErrorString(err)};
}

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace vila::cuda

#define VILA_CUDA_CHECK(expr) \
  VILA_RETURN_IF_ERROR(::vila::cuda::cuda_status((expr), #expr, __FILE__, __LINE__))
