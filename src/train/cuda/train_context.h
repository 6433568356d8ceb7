// What the CUDA training parts share: the stream, cuBLASLt (linear.h's Blas for y = x Wᵀ + b and
// the general TrainGemm for the backward GEMMs), the parameters on the device, and named scratch
// buffers that grow to the largest batch seen.
//
// Scratch::get(name, count) returns a device buffer of at least `count` elements under `name`,
// reallocated (contents lost) when the one held is smaller. Each name has one use, so a part keeps
// its saved activations under names of its own ("llm.3.q") and reads them back in the backward
// with the same count. Reallocation frees the old buffer (cudaFree synchronizes the device), so a
// pointer from an earlier get() of the same name must not be used after a larger get().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "backend/cuda/linear.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/train_gemm.h"
#include "core/status.h"
#include "train/cuda/device_params.h"

namespace vila::train {

class Scratch {
 public:
  template <typename T>
  StatusOr<T*> get(const std::string& name, int64_t count) {
    VILA_ASSIGN_OR_RETURN(void* p, get_bytes(name, static_cast<size_t>(count) * sizeof(T)));
    return static_cast<T*>(p);
  }
  StatusOr<void*> get_bytes(const std::string& name, size_t bytes) {
    cuda::DeviceBuffer& b = buffers_[name];
    if (b.bytes() < bytes || b.empty()) {
      b = cuda::DeviceBuffer();
      VILA_ASSIGN_OR_RETURN(b, cuda::DeviceBuffer::create(std::max<size_t>(bytes, 256)));
    }
    return b.data();
  }
  size_t bytes() const {
    size_t n = 0;
    for (const auto& [name, b] : buffers_) n += b.bytes();
    return n;
  }

 private:
  std::map<std::string, cuda::DeviceBuffer> buffers_;
};

struct TrainContext {
  cuda::Stream stream;
  std::unique_ptr<cuda::Blas> blas;
  std::unique_ptr<cuda::TrainGemm> gemm;
  std::unique_ptr<DeviceParams> params;
  Scratch scratch;
  // No fp32 atomics anywhere in the step: the attention backward takes the materialised path
  // (span_attention.h) instead of FlashAttention-2's atomically accumulated dq / dk / dv.
  bool deterministic = false;

  void* st() const { return stream.handle(); }

  // out (rows, n) [+]= in (rows, k) bf16 · W (n, k)ᵀ [+ bias]; W at parameter offset w_off,
  // bias at b_off (< 0: none; a bf16 output adds the bias's bf16 copy in cuBLASLt's epilogue, as
  // autocast does). out_dtype kF32 or kBF16. gelu_aux non-null (bf16 output, not accumulate):
  // out = gelu_tanh(pre) and pre = in Wᵀ + bias written to gelu_aux (rows, n) bf16. residual
  // (rows, n) of out_dtype non-null (not with accumulate): out = in Wᵀ + bias + residual.
  Status linear_forward(void* out, DType out_dtype, const void* in, int64_t rows, int64_t w_off,
                        int64_t n, int64_t k, int64_t b_off, bool accumulate,
                        void* gelu_aux = nullptr, const void* residual = nullptr) const;
  // For y = x Wᵀ (+ b) with dy (rows, n) bf16 and x (rows, k) bf16: dW (n, k) += dyᵀ x and
  // db += Σ dy when the parameter is trainable (b_off < 0: no bias); dx (rows, k) = dy W written
  // (or with beta_dx = 1 added to) unless dx is null. dW and db follow DeviceParams' lazy zeroing
  // (dW written with beta 0 when unwritten since zero_grads(), db zeroed first).
  Status linear_backward(void* dx, DType dx_dtype, float beta_dx, const void* dy, const void* x,
                         int64_t rows, int64_t w_off, int64_t n, int64_t k, int64_t b_off) const;
};

// A stream, Blas and TrainGemm for a new context (params left null).
StatusOr<std::unique_ptr<TrainContext>> make_train_context();

}  // namespace vila::train
