// What linear.cu (y = x Wᵀ + b) and train_gemm.cu (the general training GEMM) share on cuBLASLt:
// the status check, a plan (the matmul descriptor, the A / B / D layouts and the algorithm chosen
// for them) that frees its descriptors, and the heuristic choice of that algorithm. Internal to
// the .cu files of backend/cuda.
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <string>
#include <utility>

#include "backend/cuda/linear.h"
#include "core/status.h"

#define VILA_CUBLAS_CHECK(expr)                                                               \
  do {                                                                                        \
    const cublasStatus_t vila_cublas_status_ = (expr);                                        \
    if (vila_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                       \
      return ::vila::Status{::vila::StatusCode::kInternal,                                    \
                            std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " +   \
                                #expr + ": " + cublasLtGetStatusString(vila_cublas_status_)}; \
    }                                                                                         \
  } while (0)

namespace vila::cuda {

// The descriptors of one GEMM shape and the algorithm cuBLASLt's heuristic chose for it. D's
// layout also describes C (the accumulated output).
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
};

// Minimum alignments (bytes) the caller guarantees for cuBLASLt's A, B and C / D operands.
struct LtAlignment {
  uint32_t a = 0, b = 0, d = 0;
};

// Chooses plan.algo for plan.op / a / b / d with the blas workspace; alignment null keeps
// cuBLASLt's default assumption (256 bytes). Unimplemented naming `what` and the shape when no
// algorithm fits.
inline Status choose_algorithm(Blas& blas, LtPlan& plan, const LtAlignment* alignment,
                               const char* what, int64_t m, int64_t n, int64_t k) {
  struct PreferenceGuard {
    cublasLtMatmulPreference_t pref = nullptr;
    ~PreferenceGuard() {
      if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
    }
  } pref;
  VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.pref));
  const size_t ws = blas.workspace_bytes();
  VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  if (alignment != nullptr) {
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment->a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment->b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment->d},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment->d}};
    for (const auto& [attr, bytes] : aligns) {
      VILA_CUBLAS_CHECK(
          cublasLtMatmulPreferenceSetAttribute(pref.pref, attr, &bytes, sizeof(bytes)));
    }
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  VILA_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(blas.handle()),
                                                   plan.op, plan.a, plan.b, plan.d, plan.d,
                                                   pref.pref, 1, &heuristic, &found));
  if (found == 0) {
    return unimplemented(std::string(what) + ": cuBLASLt has no algorithm for M " +
                         std::to_string(m) + ", N " + std::to_string(n) + ", K " +
                         std::to_string(k));
  }
  plan.algo = heuristic.algo;
  return ok_status();
}

}  // namespace vila::cuda
