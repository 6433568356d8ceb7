// What linear.cu (y = x Wᵀ + b) and train_gemm.cu (the general training GEMM) share on cuBLASLt:
// the status check, a plan (the matmul descriptor, the A / B / D layouts and the algorithm chosen
// for them) that frees its descriptors, and the heuristic choice of that algorithm. Internal to
// the .cu files of backend/cuda. With Blas::autotune() on, a new plan of a large beta = 0 call also
// times cuBLASLt's first kTuneCandidates heuristic answers on that call's own operands (each
// overwrites D, which the call itself then writes) and keeps the fastest: the heuristic's first
// answer is not always the fastest for the training shapes.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "backend/cuda/cuda_common.cuh"
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

// A matmul preference (owned; destroyed with it): the blas workspace size and, when alignment is
// non-null, the operands' minimum alignments (null keeps cuBLASLt's default assumption, 256 bytes).
struct LtPreference {
  cublasLtMatmulPreference_t pref = nullptr;
  LtPreference() = default;
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  ~LtPreference() {
    if (pref != nullptr) cublasLtMatmulPreferenceDestroy(pref);
  }
  Status init(const Blas& blas, const LtAlignment* alignment) {
    VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = blas.workspace_bytes();
    VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    if (alignment == nullptr) return ok_status();
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment->a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment->b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment->d},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment->d}};
    for (const auto& [attr, bytes] : aligns) {
      VILA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)));
    }
    return ok_status();
  }
};

// Chooses plan.algo for plan.op / a / b / d with the blas workspace (alignment: as LtPreference).
// Unimplemented naming `what` and the shape when no algorithm fits.
inline Status choose_algorithm(Blas& blas, LtPlan& plan, const LtAlignment* alignment,
                               const char* what, int64_t m, int64_t n, int64_t k) {
  LtPreference pref;
  VILA_RETURN_IF_ERROR(pref.init(blas, alignment));
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

// The operands of the call that made a plan (beta = 0: D is overwritten by every candidate).
struct LtTuneCall {
  const void* a = nullptr;  // cuBLASLt's A and B (the caller's order as passed to cublasLtMatmul)
  const void* b = nullptr;
  void* d = nullptr;
  float alpha = 1.0f;
  cudaStream_t stream = nullptr;
};

inline constexpr int kTuneCandidates = 8;
inline constexpr int kTuneRuns = 3;
// Smaller GEMMs (m·n·k multiply-adds) keep the heuristic's answer: timing costs a host sync and
// ~30 GEMM runs per new shape, which only large GEMMs repay; a run whose packed batches vary in
// rows makes a new shape every few steps (the tiny demo model ran 3x slower when every shape was
// tuned).
inline constexpr double kTuneMinWork = 4.0e9;

inline bool worth_tuning(int64_t m, int64_t n, int64_t k) {
  return static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= kTuneMinWork;
}

// Times the heuristic's first kTuneCandidates algorithms for plan (descriptor attributes such as
// the bias pointer already set) on `call` and keeps the fastest in plan.algo. Nothing is timed
// while the stream is being captured into a CUDA graph; a candidate that fails to run is skipped.
inline Status tune_algorithm(Blas& blas, LtPlan& plan, const LtAlignment* alignment,
                             const LtTuneCall& call) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  VILA_CUDA_CHECK(cudaStreamIsCapturing(call.stream, &capture));
  if (capture != cudaStreamCaptureStatusNone) return ok_status();
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start != nullptr) cudaEventDestroy(start);
      if (stop != nullptr) cudaEventDestroy(stop);
    }
  } g;
  LtPreference pref;
  VILA_RETURN_IF_ERROR(pref.init(blas, alignment));
  cublasLtMatmulHeuristicResult_t found_algos[kTuneCandidates] = {};
  int found = 0;
  const auto handle = static_cast<cublasLtHandle_t>(blas.handle());
  VILA_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, plan.op, plan.a, plan.b, plan.d, plan.d,
                                                   pref.pref, kTuneCandidates, found_algos,
                                                   &found));
  if (found <= 1) return ok_status();
  VILA_CUDA_CHECK(cudaEventCreate(&g.start));
  VILA_CUDA_CHECK(cudaEventCreate(&g.stop));
  const float beta = 0.0f;
  const auto run = [&](const cublasLtMatmulAlgo_t& algo) {
    return cublasLtMatmul(handle, plan.op, &call.alpha, call.a, plan.a, call.b, plan.b, &beta,
                          call.d, plan.d, call.d, plan.d, &algo, blas.workspace(),
                          blas.workspace_bytes(), call.stream);
  };
  float best_ms = 0.0f;
  int best = -1;
  for (int i = 0; i < found; ++i) {
    if (found_algos[i].state != CUBLAS_STATUS_SUCCESS) continue;
    if (run(found_algos[i].algo) != CUBLAS_STATUS_SUCCESS) continue;  // also the warm-up
    VILA_CUDA_CHECK(cudaEventRecord(g.start, call.stream));
    bool ok = true;
    for (int r = 0; r < kTuneRuns && ok; ++r)
      ok = run(found_algos[i].algo) == CUBLAS_STATUS_SUCCESS;
    VILA_CUDA_CHECK(cudaEventRecord(g.stop, call.stream));
    VILA_CUDA_CHECK(cudaEventSynchronize(g.stop));
    float ms = 0.0f;
    VILA_CUDA_CHECK(cudaEventElapsedTime(&ms, g.start, g.stop));
    if (ok && (best < 0 || ms < best_ms)) best = i, best_ms = ms;
  }
  if (best >= 0) plan.algo = found_algos[best].algo;
  return ok_status();
}

}  // namespace vila::cuda
