// nn.Linear on the GPU through cuBLASLt: out (M, N) fp32 = in (M, K) · W (N, K)ᵀ (+ bias (N) fp32).
//
//   kF32   in and W fp32, CUBLAS_COMPUTE_32F (true fp32: no TF32), matches the CPU to ~1e-6 rel.
//   kBF16  in and W bf16 (the caller converts the activations), fp32 accumulate and fp32 out.
//
// Row-major out = in · Wᵀ is column-major outᵀ (N, M) = Wᵀ-op(W) · in: A = W (transposed), B = in,
// D = out, so the bias epilogue adds bias[n] to every row of out. Host-callable, no CUDA headers.
//
// An fp32 bias with a 16-bit output (which cuBLASLt's BIAS epilogue does not take) runs as an
// fp32-output GEMM into Blas's epilogue scratch, chunk of rows by chunk of rows, then one kernel
// per chunk: out = round16(epilogue(acc + bias [+ out])). The bias is added in fp32 and the
// result rounded once, as cuBLASLt does for an fp32 output; the price is the fp32 round trip
// (about 8 extra bytes per output element), so hot paths keep fp32 outputs or fold the bias.
#pragma once

#include <cstdint>
#include <memory>

#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

// A cuBLASLt handle and its workspace. One per stream that runs GEMMs; not thread-safe.
class Blas {
 public:
  static StatusOr<std::unique_ptr<Blas>> create();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  void* handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t cached_plans() const;
  // When on, a large GEMM shape's first beta = 0 call times cuBLASLt's leading heuristic
  // candidates on its operands and keeps the fastest (cublaslt_plan.cuh); off (the default): the
  // first answer.
  // The training engine turns it on; the plans made before keep their algorithm.
  void set_autotune(bool on) { autotune_ = on; }
  bool autotune() const { return autotune_; }
  // What callers that tune by default (training, the vision tower) pass to set_autotune: true
  // unless the environment variable VILA_GEMM_AUTOTUNE is "0" (to measure what tuning buys).
  static bool autotune_from_env();
  // Device bytes of the epilogue scratch (0 until a bias with a 16-bit output first runs).
  size_t scratch_bytes() const { return scratch_bytes_; }
  // The scratch, grown (cudaMalloc, after a device sync of the old one's users) to >= bytes.
  StatusOr<void*> scratch(size_t bytes);

  struct PlanCache;  // cuBLASLt descriptors + chosen algorithm per GEMM shape (linear.cu)
  PlanCache& plans() { return *plans_; }

 private:
  Blas();
  void* handle_ = nullptr;     // cublasLtHandle_t
  void* workspace_ = nullptr;  // device memory
  size_t workspace_bytes_ = 0;
  void* scratch_ = nullptr;  // device memory of the 16-bit-output bias path
  size_t scratch_bytes_ = 0;
  bool autotune_ = false;
  std::unique_ptr<PlanCache> plans_;
};

// Device pointers of one linear layer.
struct DeviceLinearWeight {
  const void* weight = nullptr;  // (N, K) of dtype
  const float* bias = nullptr;   // (N) fp32 or nullptr
  DType dtype = DType::kF32;     // kF32, kBF16 or kF16
  int64_t out_features = 0;      // N
  int64_t in_features = 0;       // K
  // (N) of dtype (bf16 / f16) or nullptr: the bias rounded to the weight dtype, which cuBLASLt's
  // own BIAS epilogue takes for a 16-bit output (as PyTorch's autocast adds a bf16 bias); with it
  // a 16-bit output skips the fp32 scratch path. bias must be set too (the fp32 outputs use it).
  const void* bias16 = nullptr;
};

// out (rows, N) fp32; in (rows, K) of w.dtype (fp32 or bf16); device pointers, 16-byte aligned.
// stream: cudaStream_t or nullptr. out must not alias in.
Status linear(Blas& blas, float* out, const void* in, const DeviceLinearWeight& w, int64_t rows,
              void* stream);

// The general form: out (rows, N) of out_dtype (kF32, or w.dtype when it is bf16/f16) at
// out_row_stride elements (0: N) = epilogue(in (rows, K) · Wᵀ + bias) [+ out when accumulate].
//   accumulate  out += result (beta = 1): the residual add fused into the GEMM (any out_dtype).
//   gelu_tanh   GELU with the tanh approximation after the bias (cuBLASLt GELU_BIAS epilogue),
//               SigLIP's gelu_pytorch_tanh; not with accumulate.
// A bias with a 16-bit out_dtype goes through the fp32 scratch path (see the top of this file):
// the same results as an fp32 output rounded once, at extra memory traffic.
// in: (rows, K) of w.dtype at in_row_stride (0: K). cuBLASLt plans are cached in `blas` per shape.
struct LinearArgs {
  void* out = nullptr;
  DType out_dtype = DType::kF32;
  int64_t out_row_stride = 0;
  const void* in = nullptr;
  int64_t in_row_stride = 0;
  int64_t rows = 0;
  bool accumulate = false;
  bool gelu_tanh = false;
  // With gelu_tanh: also the pre-activation (rows, N) of out_dtype, compact, written here by the
  // GEMM (cuBLASLt's GELU_AUX epilogue; N a multiple of 8) for the backward. Not with the fp32
  // scratch path (a 16-bit output with an fp32-only bias).
  void* gelu_aux = nullptr;
  // (rows, N) of out_dtype at out_row_stride, or null: out = in · Wᵀ + bias + residual (cuBLASLt's
  // C operand, read before D is written: the residual add without copying it into out first).
  // Not out itself (that is accumulate), not with accumulate or gelu_tanh, nor on the fp32
  // scratch path.
  const void* residual = nullptr;
};
Status linear(Blas& blas, const LinearArgs& args, const DeviceLinearWeight& w, void* stream);

}  // namespace vila::cuda
