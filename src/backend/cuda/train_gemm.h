// General cuBLASLt GEMM for training (the backward passes need transposes, strides, beta = 1 and
// strided batches, which linear.h's out = in · Wᵀ does not cover).
//
// Row-major semantics, per batch index b:
//   C_b (M, N) = alpha · op(A_b) (M, K) · op(B_b) (K, N) + beta · C_b
// op(A) = A stored (M, K) at row stride lda, or with trans_a Aᵀ of A stored (K, M); op(B) = B
// stored (K, N) at ldb, or with trans_b Bᵀ of B stored (N, K). A_b = A + b · stride_a (elements).
// A and B bf16, fp32 accumulation; C fp32 or bf16. The uses of a Linear y = x Wᵀ, W (out, in):
//   dX (T, in)  = dY (T, out) · W (out, in)                    gemm(dY, W)
//   dW (out, in) += dYᵀ (out, T) · X (T, in)                    gemm(dY ᵀ, X), beta = 1
// Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: cuBLASLt gets B's memory as its A
// operand and A's as its B. Plans (descriptors + heuristic algorithm) are cached per shape.
#pragma once

#include <cstdint>
#include <memory>

#include "backend/cuda/linear.h"
#include "core/dtype.h"
#include "core/status.h"

namespace vila::cuda {

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;  // bf16
  int64_t lda = 0;
  bool trans_a = false;
  const void* b = nullptr;  // bf16
  int64_t ldb = 0;
  bool trans_b = false;
  void* c = nullptr;  // c_dtype
  int64_t ldc = 0;
  DType c_dtype = DType::kF32;  // kF32 or kBF16
  float alpha = 1.0f;
  float beta = 0.0f;
  int batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batch entries
};

// Owns the plan cache; borrows `blas` (its handle and workspace), which must outlive it.
class TrainGemm {
 public:
  explicit TrainGemm(Blas& blas);
  ~TrainGemm();
  TrainGemm(const TrainGemm&) = delete;
  TrainGemm& operator=(const TrainGemm&) = delete;

  // stream: cudaStream_t or nullptr. InvalidArgument for a bad shape / stride.
  Status gemm(const GemmArgs& args, void* stream);
  Blas& blas() { return blas_; }

  struct Cache;  // train_gemm.cu

 private:
  Blas& blas_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace vila::cuda
